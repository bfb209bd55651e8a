"""The project's handler400 and handler404 (webapp/urls.py): JSON where JSON is wanted, so that the
API and the pages' JSON endpoints never answer an HTML error page."""

from django.http import JsonResponse
from django.shortcuts import render
from django.views.defaults import page_not_found

from webapp.params import BadParam

API_PREFIX = "/api/"


def _wants_json(request) -> bool:
    return (
        request.path.endswith(".json")
        or request.headers.get("accept", "").startswith("application/json")
        or request.headers.get("x-requested-with") == "XMLHttpRequest"
    )


def bad_request(request, exception=None):
    """BadParam's message for the user; any other 400 (e.g. a suspicious request) stays generic."""
    message = str(exception) if isinstance(exception, BadParam) else "The request was malformed."
    if request.path.startswith(API_PREFIX):
        return JsonResponse({"detail": message}, status=400)
    if _wants_json(request):
        return JsonResponse({"error": message}, status=400)
    return render(request, "400.html", {"message": message}, status=400)


def not_found(request, exception=None):
    """A URL no route matches (e.g. /api/runs/abc/): under /api/ the API's own 404 body."""
    if request.path.startswith(API_PREFIX):
        return JsonResponse({"detail": "Not found."}, status=404)
    return page_not_found(request, exception)
