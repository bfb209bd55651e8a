"""Per-user notification settings and a record of every delivery (what makes a duplicate task a no-op)."""

import secrets

from django.conf import settings
from django.db import models


def new_webhook_secret() -> str:
    return secrets.token_urlsafe(32)


class Event(models.TextChoices):
    SUCCEEDED = "succeeded", "Run succeeded"
    FAILED = "failed", "Run failed"
    STUCK = "stuck", "Run diagnosed as stuck"


class NotificationSettings(models.Model):
    """What one user is told about their own runs. No row = the defaults below (e-mail on, no webhook)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_settings"
    )
    email_succeeded = models.BooleanField("E-mail when a run succeeds", default=True)
    email_failed = models.BooleanField("E-mail when a run fails", default=True)
    email_stuck = models.BooleanField("E-mail when a run is diagnosed as stuck", default=True)
    # Validated (webapp/notifications/validators.py) on the form and again before every POST.
    webhook_url = models.URLField("Webhook URL", max_length=500, blank=True)
    # Signs the webhook body (HMAC-SHA256); made on the server, shown once, rotatable.
    webhook_secret = models.CharField(max_length=64, blank=True, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "notification settings"
        verbose_name_plural = "notification settings"

    def __str__(self):
        return f"notifications of {self.user}"

    def email_enabled(self, event: str) -> bool:
        return bool(getattr(self, f"email_{event}", False))


class NotificationDelivery(models.Model):
    """One message on one channel for one (run, user, event): created once, sent at most once."""

    class Channel(models.TextChoices):
        EMAIL = "email", "E-mail"
        WEBHOOK = "webhook", "Webhook"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"  # not sent yet, or waiting for a retry
        SENDING = "sending", "Sending"  # claimed by a task (a stale claim is taken over after a lease)
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"  # final: a permanent error, or out of attempts

    run = models.ForeignKey("runs.Run", on_delete=models.CASCADE, related_name="notification_deliveries")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    channel = models.CharField(max_length=10, choices=Channel.choices)
    event = models.CharField(max_length=12, choices=Event.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    target = models.CharField(max_length=500, blank=True)  # the address or URL it went to
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["run", "user", "channel", "event"], name="one_delivery_per_run_event")
        ]

    def __str__(self):
        return f"{self.channel} {self.event} of run {self.run_id} to {self.user}: {self.status}"
