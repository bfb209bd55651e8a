from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import JsonResponse

# Paths reachable without a session: login itself, static files, the metrics ingest endpoint
# (authenticated by its per-run bearer token instead) and the REST API (DRF authenticates by API token
# or session and answers 401/403 itself; its HTML pages, /api/token/ and /api/docs/, require a login).
OPEN_PREFIXES = ("/accounts/login/", "/static/", "/ingest/", "/healthz", "/favicon.ico", "/api/")


class LoginRequiredMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.user.is_authenticated and not request.path.startswith(OPEN_PREFIXES):
            if request.path.startswith("/admin/"):
                return self.get_response(request)  # admin has its own login
            if request.headers.get("accept", "").startswith("application/json"):
                return JsonResponse({"error": "login required"}, status=401)
            return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
        return self.get_response(request)
