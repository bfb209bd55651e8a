"""Run notifications: who is told (the run's submitter), what (the payload), how (e-mail, signed webhook).

Entry points:
- on_run_finished(run): called by Run.transition on a terminal move (SUCCEEDED → "succeeded",
  FAILED → "failed"; CANCELLED is not notified). Queues notifications.tasks.notify_run on commit.
- notify(run, "stuck", detail): for the watchdog that diagnoses stuck runs (same path, any event).
- deliver(run_id, event, detail): what the task runs; sends each channel at most once
  (NotificationDelivery rows, unique per run/user/channel/event) and answers how many seconds until a
  retry is due, or None when nothing is left to retry.
"""

import hashlib
import hmac
import json
import logging
import smtplib
import time
from datetime import timedelta

import requests
import urllib3
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from webapp.runs.states import Status

from .models import Event, NotificationDelivery, NotificationSettings, new_webhook_secret
from .validators import WebhookTarget, resolve_webhook

log = logging.getLogger(__name__)

EVENT_FOR_STATUS = {Status.SUCCEEDED: Event.SUCCEEDED, Status.FAILED: Event.FAILED}
SIGNATURE_HEADER = "X-Sparkdeck-Signature"
TIMESTAMP_HEADER = "X-Sparkdeck-Timestamp"
# A claimed (SENDING) delivery whose task died is taken over by the next task after this long.
CLAIM_LEASE = timedelta(minutes=5)
MAX_ERROR = 2000


class TransientError(Exception):
    """Worth another attempt: connection error, timeout, HTTP 5xx or 429, SMTP/socket error."""


class PermanentError(Exception):
    """Final: HTTP 4xx (not 429), a redirect, a URL no longer allowed."""


# --- settings -----------------------------------------------------------------------------------


def settings_for(user) -> NotificationSettings:
    """The user's settings; an unsaved row with the defaults when they never saved any."""
    found = NotificationSettings.objects.filter(user=user).first()
    return found or NotificationSettings(user=user)


def rotate_secret(prefs: NotificationSettings) -> str:
    """A new webhook secret for `prefs` (saved); the old one stops verifying at once."""
    prefs.webhook_secret = new_webhook_secret()
    prefs.save()
    return prefs.webhook_secret


# --- queueing -----------------------------------------------------------------------------------


def on_run_finished(run) -> None:
    """Run.transition's hook for terminal moves: queue the notification once the move is committed."""
    event = EVENT_FOR_STATUS.get(run.status)
    if event is not None:
        notify(run, event)


def notify(run, event: str, detail: str = "") -> None:
    """Queue tasks.notify_run(run.pk, event, detail) on commit. `event` is one of Event
    ("succeeded", "failed", "stuck"); `detail` (e.g. the watchdog's diagnosis) goes into the message."""
    if event not in Event.values:
        raise ValueError(f"unknown notification event {event!r}")
    if not run.created_by_id:
        return
    run_id, detail = run.pk, str(detail or "")[:MAX_ERROR]
    transaction.on_commit(lambda: _enqueue(run_id, event, detail))


def _enqueue(run_id: int, event: str, detail: str) -> None:
    from .tasks import notify_run

    try:
        notify_run.delay(run_id, event, detail)
    except Exception:  # noqa: BLE001 - a broker or notification problem never breaks the caller
        log.exception("queueing the %s notification of run %s failed", event, run_id)


# --- the message --------------------------------------------------------------------------------


def run_url(run) -> str:
    return f"{settings.PUBLIC_URL}{run.get_absolute_url()}"


def build_payload(run, event: str, detail: str = "", timestamp: int | None = None, delivery_id=None) -> dict:
    return {
        "event": event,
        "timestamp": int(time.time()) if timestamp is None else timestamp,
        "delivery": delivery_id,
        "detail": detail,
        "run": {
            "id": run.pk,
            "name": str(run),
            "status": run.status,
            "reason": run.status_reason,
            "accuracy": run.test_accuracy,
            "template": run.template,
            "url": run_url(run),
            "team": {"id": run.team_id, "name": run.team.name},
            "submitted_by": run.created_by.get_username() if run.created_by else None,
            "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        },
    }


def encode(payload: dict) -> bytes:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def sign(secret: str, body: bytes) -> str:
    """The X-Sparkdeck-Signature value: "sha256=" + hex HMAC-SHA256 of the raw body with the user's secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def email_text(run, event: str, detail: str) -> tuple[str, str]:
    verb = {Event.SUCCEEDED: "succeeded", Event.FAILED: "failed", Event.STUCK: "looks stuck"}[event]
    subject = f"[Sparkdeck] Run {run} {verb}"
    lines = [f"Run {run} (#{run.pk}, team {run.team.name}) {verb}.", "", f"Status: {run.status}"]
    if run.status_reason:
        lines.append(f"Reason: {run.status_reason}")
    if detail:
        lines.append(f"Detail: {detail}")
    if run.test_accuracy is not None:
        lines.append(f"Held-out accuracy: {run.test_accuracy:.4f}")
    lines += ["", run_url(run), "", "Change what you are told at " + f"{settings.PUBLIC_URL}/accounts/notifications/"]
    return subject, "\n".join(lines)


# --- sending ------------------------------------------------------------------------------------


def _send_email(run, event: str, detail: str, address: str, delivery: NotificationDelivery) -> None:
    subject, body = email_text(run, event, detail)
    try:
        send_mail(subject, body, None, [address], fail_silently=False)
    except (smtplib.SMTPException, OSError) as exc:
        raise TransientError(f"{type(exc).__name__}: {exc}") from exc


class PinnedAdapter(requests.adapters.HTTPAdapter):
    """Connects to one given address whatever the URL's host resolves to by then, while TLS still
    sends (SNI) and checks (certificate) the URL's host name: the address is the one validated."""

    def __init__(self, address: str, host: str):
        self.address, self.host = address, host
        super().__init__(max_retries=0)

    def get_connection_with_tls_context(self, request, verify, proxies=None, cert=None):
        host_params, pool_kwargs = self.build_connection_pool_key_attributes(request, verify, cert)
        host_params["host"] = self.address
        if host_params["scheme"] == "https":
            pool_kwargs.update(server_hostname=self.host, assert_hostname=self.host)
        return self.poolmanager.connection_from_host(**host_params, pool_kwargs=pool_kwargs)


def pinned_session(target: WebhookTarget, address: str) -> requests.Session:
    """A session that sends to `address` only and ignores the environment (HTTP(S)_PROXY, NO_PROXY,
    .netrc, REQUESTS_CA_BUNDLE): a proxy would resolve the name itself, out of our check."""
    session = requests.Session()
    session.trust_env = False
    session.verify = settings.WEBHOOK_CA_BUNDLE or True
    adapter = PinnedAdapter(address, target.host)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _connect_failed(exc: requests.RequestException) -> bool:
    """Nothing was sent: the next address may be tried without risking a duplicate."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, urllib3.exceptions.NewConnectionError)


def _send_webhook(run, event: str, detail: str, prefs: NotificationSettings, delivery: NotificationDelivery) -> None:
    url = prefs.webhook_url
    try:
        target = resolve_webhook(url)  # again: DNS may have changed since the form accepted it
    except ValidationError as exc:
        message = "; ".join(exc.messages)
        if exc.error_list[0].code == "unresolvable":
            raise TransientError(message) from exc
        raise PermanentError(f"URL refused: {message}") from exc
    timestamp = int(time.time())
    body = encode(build_payload(run, event, detail, timestamp=timestamp, delivery_id=delivery.pk))
    headers = {
        "Host": target.netloc,  # the connection goes to an address; the server wants its name
        "Content-Type": "application/json",
        "User-Agent": "Sparkdeck-Webhook/1",
        "X-Sparkdeck-Event": event,
        "X-Sparkdeck-Delivery": str(delivery.pk),
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(prefs.webhook_secret, body),
    }
    failure = None
    for address in target.addresses:
        try:
            with (
                pinned_session(target, address) as session,
                session.post(
                    url,
                    data=body,
                    headers=headers,
                    timeout=settings.WEBHOOK_TIMEOUT_SECONDS,
                    allow_redirects=False,  # a redirect could lead anywhere, private hosts included
                    stream=True,
                ) as response,
            ):
                code = response.status_code
                snippet = response.raw.read(300, decode_content=True).decode("utf-8", "replace") if code >= 300 else ""
            break
        except (requests.ConnectionError, requests.Timeout) as exc:
            failure = TransientError(f"{type(exc).__name__}: {exc}")
            if not _connect_failed(exc):
                raise failure from exc
        except requests.RequestException as exc:
            raise PermanentError(f"{type(exc).__name__}: {exc}") from exc
    else:
        raise failure or TransientError("the webhook host has no address")
    if 200 <= code < 300:
        return
    message = f"HTTP {code}" + (f": {snippet.strip()}" if snippet.strip() else "")
    if code == 429 or code >= 500:
        raise TransientError(message)
    if 300 <= code < 400:
        raise PermanentError(message + " (redirects are not followed)")
    raise PermanentError(message)


def retry_delay(attempts: int) -> float:
    """Seconds before attempt `attempts + 1`: base × 2^(attempts-1), capped."""
    return min(settings.NOTIFY_RETRY_BASE_SECONDS * 2 ** max(attempts - 1, 0), settings.NOTIFY_RETRY_MAX_SECONDS)


def _deliver_one(run, user, channel, event, target, send) -> float | None:
    delivery, _ = NotificationDelivery.objects.get_or_create(
        run=run, user=user, channel=channel, event=event, defaults={"target": target[:500]}
    )
    now = timezone.now()
    claimable = Q(status=NotificationDelivery.Status.PENDING) | Q(
        status=NotificationDelivery.Status.SENDING, updated__lt=now - CLAIM_LEASE
    )
    claimed = (
        NotificationDelivery.objects.filter(claimable, pk=delivery.pk)
        .filter(attempts__lt=settings.NOTIFY_MAX_ATTEMPTS)
        .update(status=NotificationDelivery.Status.SENDING, attempts=F("attempts") + 1, updated=now)
    )
    if not claimed:  # sent, failed, out of attempts, or another task is sending it now
        return None
    delivery.refresh_from_db()
    status, error, retry_in = NotificationDelivery.Status.SENT, "", None
    try:
        send(delivery)
    except TransientError as exc:
        error = str(exc)
        if delivery.attempts >= settings.NOTIFY_MAX_ATTEMPTS:
            status = NotificationDelivery.Status.FAILED
            error = f"gave up after {delivery.attempts} attempts: {error}"
        else:
            status, retry_in = NotificationDelivery.Status.PENDING, retry_delay(delivery.attempts)
    except PermanentError as exc:
        status, error = NotificationDelivery.Status.FAILED, str(exc)
    except Exception as exc:  # noqa: BLE001 - recorded, not retried: a bug will not fix itself
        log.exception("%s notification %s failed", channel, delivery.pk)
        status, error = NotificationDelivery.Status.FAILED, f"{type(exc).__name__}: {exc}"
    NotificationDelivery.objects.filter(pk=delivery.pk).update(
        status=status, last_error=error[:MAX_ERROR], updated=timezone.now()
    )
    if status == NotificationDelivery.Status.FAILED:
        log.warning("%s notification of run %s to %s failed: %s", channel, run.pk, user, error)
    return retry_in


def deliver(run_id: int, event: str, detail: str = "") -> float | None:
    """Send the `event` notification of run `run_id` to its submitter on each channel they enabled.

    Idempotent: each (run, user, channel, event) is sent at most once. Returns the seconds until a
    transient failure should be retried (the task re-runs this; sent channels are skipped), or None.
    """
    from webapp.runs.models import Run

    if event not in Event.values:
        raise ValueError(f"unknown notification event {event!r}")
    run = Run.objects.select_related("team", "created_by").filter(pk=run_id).first()
    user = run.created_by if run else None
    if user is None or not user.is_active:
        return None
    prefs = settings_for(user)
    waits = []
    if prefs.email_enabled(event) and user.email:
        waits.append(
            _deliver_one(
                run,
                user,
                NotificationDelivery.Channel.EMAIL,
                event,
                user.email,
                lambda d: _send_email(run, event, detail, user.email, d),
            )
        )
    if prefs.webhook_url and prefs.webhook_secret:
        waits.append(
            _deliver_one(
                run,
                user,
                NotificationDelivery.Channel.WEBHOOK,
                event,
                prefs.webhook_url,
                lambda d: _send_webhook(run, event, detail, prefs, d),
            )
        )
    waits = [w for w in waits if w is not None]
    return min(waits) if waits else None
