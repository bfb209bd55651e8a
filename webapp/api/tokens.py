"""Per-user API tokens: made or rotated on /api/token/, stored as a SHA-256 digest, looked up by it.

A key is "sdk_" + 32 random bytes (urlsafe base64): with that much entropy an unsalted digest is as
good as a password hash, and it lets a request find its token with one indexed lookup.
"""

import hashlib
import secrets
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from .models import ApiToken

KEY_PREFIX = "sdk_"
MAX_KEY_LENGTH = 100
# last_used_at is written at most this often per token (not on every request).
TOUCH_EVERY = timedelta(minutes=1)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()


def issue(user) -> str:
    """Make `user` a new token, replacing (revoking) any earlier one; returns the key, shown once."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        ApiToken.objects.filter(user=user).delete()
        ApiToken.objects.create(user=user, digest=digest(key), prefix=key[:10])
    return key


def revoke(user) -> bool:
    deleted, _ = ApiToken.objects.filter(user=user).delete()
    return bool(deleted)


def token_of(user) -> ApiToken | None:
    return ApiToken.objects.filter(user=user).first()


def user_for(key: str):
    """The active user whose token `key` is, or None."""
    if not key or len(key) > MAX_KEY_LENGTH or not key.startswith(KEY_PREFIX):
        return None
    token = ApiToken.objects.select_related("user").filter(digest=digest(key)).first()
    if token is None or not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > TOUCH_EVERY:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token.user
