"""Refusing an oversized upload before and while its body is read (settings.MAX_UPLOAD_BYTES)."""

from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.template.defaultfilters import filesizeformat

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
