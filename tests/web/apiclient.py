"""An API client as a script uses it: a bearer token, and server errors answered (not raised)."""

from rest_framework.test import APIClient

from webapp.api import tokens


def api(user=None):
    c = APIClient(raise_request_exception=False)
    if user is not None:
        c.credentials(HTTP_AUTHORIZATION=f"Token {tokens.issue(user)}")
    return c
