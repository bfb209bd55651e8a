from django.conf import settings
from django.db import models


class ApiToken(models.Model):
    """A user's API token. Only its SHA-256 digest is stored; the key itself is shown once, when made."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_token")
    digest = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=12)  # the key's first characters, to recognise it on the page
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"{self.prefix}… ({self.user})"
