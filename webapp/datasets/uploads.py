"""Refusing an oversized upload before and while its body is read (settings.MAX_UPLOAD_BYTES).

Views that take files (datasets, model files) wear :func:`limited_upload`.
"""

import functools

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.template.defaultfilters import filesizeformat
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from webapp.params import parse_int

# Room for the form's other fields and the multipart boundaries on top of the files themselves.
FORM_OVERHEAD_BYTES = 1 << 20


def too_large_message(limit: int) -> str:
    size = filesizeformat(limit).replace("\xa0", " ")
    return f"The upload is larger than the {size} upload limit."


def declared_too_large(request, limit: int) -> bool:
    """The request's Content-Length alone shows the files cannot fit (checked before reading the body; a
    malformed Content-Length raises BadParam)."""
    length = parse_int(request.META.get("CONTENT_LENGTH"), "Content-Length", default=0)
    return length > limit + FORM_OVERHEAD_BYTES


class LimitedUploadHandler(FileUploadHandler):
    """First in the chain: counts the bytes of all files of the request and stops parsing past ``limit``.

    Stopping (StopUpload) leaves the files incomplete and the rest of the body unread; the view looks
    at :attr:`exceeded` before using anything that was parsed.
    """

    def __init__(self, request, limit: int):
        super().__init__(request)
        self.limit = limit
        self.received = 0
        self.exceeded = False

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > self.limit:
            self.exceeded = True
            raise StopUpload(connection_reset=True)
        return raw_data

    def file_complete(self, file_size):
        return None  # the next handlers build the file


def limited_upload(refuse):
    """Decorator of a view taking files: a POST over settings.MAX_UPLOAD_BYTES is answered by
    ``refuse(request, message)`` from its Content-Length before the body is read, or as soon as the
    streamed files pass the limit (before the view sees anything parsed). The CSRF check runs after
    the limiting handler is in place (reading the token parses the body)."""

    def decorate(view):
        @functools.wraps(view)
        def checked(request, *args, **kwargs):
            handler = getattr(request, "upload_limit_handler", None)
            if handler is not None:
                request.FILES  # noqa: B018 - parse the body now, under the handler
                if handler.exceeded:
                    return refuse(request, too_large_message(handler.limit))
            return view(request, *args, **kwargs)

        protected = csrf_protect(checked)

        @csrf_exempt
        @functools.wraps(view)
        def wrapper(request, *args, **kwargs):
            if request.method == "POST":
                limit = settings.MAX_UPLOAD_BYTES
                if declared_too_large(request, limit):
                    return refuse(request, too_large_message(limit))
                handler = LimitedUploadHandler(request, limit)
                request.upload_handlers.insert(0, handler)
                request.upload_limit_handler = handler
            return protected(request, *args, **kwargs)

        return wrapper

    return decorate
