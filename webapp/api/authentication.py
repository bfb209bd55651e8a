"""`Authorization: Token <key>` (or `Bearer <key>`) for API clients; browsers use their session."""

from rest_framework import authentication, exceptions

from . import tokens

SCHEMES = (b"token", b"bearer")


class ApiTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Token"

    def authenticate(self, request):
        parts = authentication.get_authorization_header(request).split()
        if not parts or parts[0].lower() not in SCHEMES:
            return None  # no token offered: the session (or nothing) decides
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Invalid token header: use 'Token <key>'.")
        try:
            key = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        user = tokens.user_for(key)
        if user is None:
            raise exceptions.AuthenticationFailed("Invalid token.")
        return user, key

    def authenticate_header(self, request):
        return self.keyword  # makes DRF answer 401 (not 403) when no credentials were given
