"""The API's two HTML pages: the token page and the OpenAPI docs (both need a login)."""

import math

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods
from drf_spectacular.views import SpectacularSwaggerView
from rest_framework.throttling import UserRateThrottle

from . import tokens


class TokenIssueThrottle(UserRateThrottle):
    """Making or rotating a key, per user, at settings.API_TOKEN_RATE (DRF's throttle and its cache: the
    default cache is per process, so with several web processes each counts on its own)."""

    scope = "api_token"

    def get_rate(self):
        return settings.API_TOKEN_RATE


@login_required
@require_http_methods(["GET", "POST"])
def token_page(request):
    """Make or rotate (POST action=issue) or revoke (action=revoke) the user's token. A new key is shown
    on the response to that POST only: it is stored hashed and cannot be shown again."""
    key = None
    if request.method == "POST":
        action = request.POST.get("action")
        if action == "issue":
            throttle = TokenIssueThrottle()
            if not throttle.allow_request(request, None):
                wait = math.ceil(throttle.wait() or 1)
                messages.error(request, f"Too many new tokens; try again in {wait} s.")
                response = render(request, "api/token.html", {"token": tokens.token_of(request.user)}, status=429)
                response["Retry-After"] = str(wait)
                return response
            key = tokens.issue(request.user)
        elif action == "revoke":
            if tokens.revoke(request.user):
                messages.success(request, "Your API token was revoked; requests with it are refused from now on.")
            return redirect("api:token")
        else:
            messages.error(request, "Unknown action.")
            return redirect("api:token")
    ctx = {"token": tokens.token_of(request.user), "key": key}
    response = render(request, "api/token.html", ctx)
    if key:
        response["Cache-Control"] = "no-store"
    return response


docs_page = login_required(SpectacularSwaggerView.as_view(url_name="api:schema"))
