"""Run notifications (webapp/notifications): e-mail and signed webhooks to the run's submitter, sent once,
retried on transient errors only; the settings page."""

import hashlib
import hmac
import json
import socket
import ssl
import subprocess
import threading
import time
from http.server import ThreadingHTTPServer

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse

from tests.fake_http import QuietHandler
from webapp.accounts.models import Membership
from webapp.notifications import services
from webapp.notifications.models import NotificationDelivery, NotificationSettings
from webapp.runs.models import Run
from webapp.runs.states import Status

pytestmark = pytest.mark.django_db


class Hook:
    """A real HTTP server on 127.0.0.1 that records each POST and answers with the next queued status."""

    def __init__(self, tls=None):
        self.requests = []
        self.replies = []
        hook = self

        class Handler(QuietHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                hook.requests.append((dict(self.headers), body))
                code = hook.replies.pop(0) if hook.replies else 200
                self.send_response(code)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"nope" if code >= 400 else b"ok")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        if tls is not None:  # an ssl.SSLContext: HTTPS
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook():
    h = Hook()
    yield h
    h.close()


@pytest.fixture(autouse=True)
def notify_settings(settings, eager_tasks):
    """notify_run runs inline; its retries too (Celery re-applies a retried eager task at once, but only
    when eager errors do not propagate: with propagation, Retry itself is raised to the caller)."""
    from workers.celery import app

    app.conf.task_eager_propagates = False  # eager_tasks restores it
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.WEBHOOK_ALLOW_PRIVATE = True  # the test server is on loopback
    settings.NOTIFY_RETRY_BASE_SECONDS = 0.01
    settings.NOTIFY_MAX_ATTEMPTS = 5
    settings.PUBLIC_URL = "https://sparkdeck.example"
    return settings


@pytest.fixture
def submitter(alice):
    user, team = alice
    user.email = "alice@example.com"
    user.save()
    return user, team


def make_run(submitter, cluster, dataset, name="digits-cnn"):
    user, team = submitter
    return Run.objects.create(team=team, created_by=user, name=name, dataset=dataset, template="cnn", cluster=cluster)


@pytest.fixture
def run(submitter, cluster, digits_dataset):
    return make_run(submitter, cluster, digits_dataset)


def finish(run, target, capture, **fields):
    """Move a run to `target` and run the on-commit callbacks (the eager notify_run task)."""
    with capture(execute=True):
        run.transition(Status.SUBMITTED)
        if target != Status.CANCELLED:
            run.transition(Status.RUNNING)
        run.transition(target, **fields)


def set_prefs(user, **fields):
    prefs, _ = NotificationSettings.objects.get_or_create(user=user)
    for k, v in fields.items():
        setattr(prefs, k, v)
    if prefs.webhook_url and not prefs.webhook_secret:
        prefs.webhook_secret = "s3cret-for-tests"
    prefs.save()
    return prefs


def deliveries(run, channel):
    return list(NotificationDelivery.objects.filter(run=run, channel=channel))


# --- e-mail ----------------------------------------------------------------------------------------


def test_email_on_success_by_default(run, django_capture_on_commit_callbacks):
    finish(run, Status.SUCCEEDED, django_capture_on_commit_callbacks, test_accuracy=0.97)
    assert len(mail.outbox) == 1
    msg = mail.outbox[0]
    assert msg.to == ["alice@example.com"]
    assert "digits-cnn" in msg.subject and "succeeded" in msg.subject
    assert f"https://sparkdeck.example/runs/{run.pk}/" in msg.body
    assert "0.9700" in msg.body
    (d,) = deliveries(run, "email")
    assert (d.status, d.attempts, d.event) == ("sent", 1, "succeeded")


def test_email_follows_settings_per_event(submitter, cluster, digits_dataset, django_capture_on_commit_callbacks):
    set_prefs(submitter[0], email_succeeded=False, email_failed=True)
    ok = make_run(submitter, cluster, digits_dataset, "ok-run")
    finish(ok, Status.SUCCEEDED, django_capture_on_commit_callbacks)
    assert mail.outbox == []
    bad = make_run(submitter, cluster, digits_dataset, "bad-run")
    finish(bad, Status.FAILED, django_capture_on_commit_callbacks, reason="executor lost")
    assert len(mail.outbox) == 1
    assert "bad-run" in mail.outbox[0].subject and "failed" in mail.outbox[0].subject
    assert "executor lost" in mail.outbox[0].body
    assert not NotificationDelivery.objects.filter(run=ok).exists()


def test_cancelled_runs_are_not_notified(run, django_capture_on_commit_callbacks):
    finish(run, Status.CANCELLED, django_capture_on_commit_callbacks)
    assert mail.outbox == []
    assert not NotificationDelivery.objects.exists()


def test_stuck_is_notified_through_notify(run, hook, django_capture_on_commit_callbacks):
    set_prefs(run.created_by, webhook_url=hook.url)
    run.transition(Status.SUBMITTED)
    run.transition(Status.RUNNING)
    with django_capture_on_commit_callbacks(execute=True):
        services.notify(run, "stuck", "no metrics for 30 minutes")
    assert len(mail.outbox) == 1 and "looks stuck" in mail.outbox[0].subject
    assert "no metrics for 30 minutes" in mail.outbox[0].body
    payload = json.loads(hook.requests[0][1])
    assert payload["event"] == "stuck" and payload["detail"] == "no metrics for 30 minutes"
    assert payload["run"]["status"] == "RUNNING"
    with pytest.raises(ValueError):
        services.notify(run, "exploded")


# --- webhooks --------------------------------------------------------------------------------------


def test_webhook_is_signed_json(run, hook, django_capture_on_commit_callbacks):
    prefs = set_prefs(run.created_by, webhook_url=hook.url)
    before = int(time.time())
    finish(run, Status.SUCCEEDED, django_capture_on_commit_callbacks, test_accuracy=0.97)
    assert len(hook.requests) == 1
    headers, body = hook.requests[0]
    expected = "sha256=" + hmac.new(prefs.webhook_secret.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Sparkdeck-Signature"], expected)
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Sparkdeck-Event"] == "succeeded"
    timestamp = int(headers["X-Sparkdeck-Timestamp"])
    assert before <= timestamp <= int(time.time()) + 1
    payload = json.loads(body)
    assert payload["timestamp"] == timestamp  # the signed body carries the timestamp: no replay with a new header
    assert payload["event"] == "succeeded"
    (d,) = deliveries(run, "webhook")
    assert payload["delivery"] == d.pk and headers["X-Sparkdeck-Delivery"] == str(d.pk)
    assert payload["run"] == {
        "id": run.pk,
        "name": "digits-cnn",
        "status": "SUCCEEDED",
        "reason": "",
        "accuracy": 0.97,
        "template": "cnn",
        "url": f"https://sparkdeck.example/runs/{run.pk}/",
        "team": {"id": run.team_id, "name": "Team A"},
        "submitted_by": "alice",
        "finished_at": payload["run"]["finished_at"],
    }
    assert payload["run"]["finished_at"]
    assert (d.status, d.attempts, d.last_error) == ("sent", 1, "")
    # A wrong secret does not verify.
    wrong = "sha256=" + hmac.new(b"other", body, hashlib.sha256).hexdigest()
    assert headers["X-Sparkdeck-Signature"] != wrong


def test_webhook_5xx_then_ok_is_retried_and_delivered_once(run, hook, django_capture_on_commit_callbacks):
    set_prefs(run.created_by, webhook_url=hook.url)
    hook.replies = [500, 429, 200]
    finish(run, Status.FAILED, django_capture_on_commit_callbacks, reason="boom")
    assert len(hook.requests) == 3
    assert [json.loads(b)["event"] for _, b in hook.requests] == ["failed"] * 3
    (d,) = deliveries(run, "webhook")
    assert (d.status, d.attempts, d.last_error) == ("sent", 3, "")
    # The retries re-ran the task, but the e-mail that went out on the first try is not sent again.
    assert len(mail.outbox) == 1
    (e,) = deliveries(run, "email")
    assert (e.status, e.attempts) == ("sent", 1)


def test_webhook_4xx_is_final(run, hook, django_capture_on_commit_callbacks):
    set_prefs(run.created_by, webhook_url=hook.url, email_succeeded=False)
    hook.replies = [400, 200]
    finish(run, Status.SUCCEEDED, django_capture_on_commit_callbacks)
    assert len(hook.requests) == 1
    (d,) = deliveries(run, "webhook")
    assert (d.status, d.attempts) == ("failed", 1)
    assert "HTTP 400" in d.last_error and "nope" in d.last_error


def test_unreachable_webhook_gives_up_after_bounded_attempts(run, settings, django_capture_on_commit_callbacks):
    settings.NOTIFY_MAX_ATTEMPTS = 3
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    set_prefs(run.created_by, webhook_url=f"http://127.0.0.1:{port}/hook", email_succeeded=False)
    finish(run, Status.SUCCEEDED, django_capture_on_commit_callbacks)
    (d,) = deliveries(run, "webhook")
    assert (d.status, d.attempts) == ("failed", 3)
    assert "gave up after 3 attempts" in d.last_error and "ConnectionError" in d.last_error
    run.refresh_from_db()
    assert run.status == Status.SUCCEEDED


def test_retry_delay_is_exponential_and_capped(settings):
    settings.NOTIFY_RETRY_BASE_SECONDS = 30
    settings.NOTIFY_RETRY_MAX_SECONDS = 600
    assert [services.retry_delay(n) for n in range(1, 7)] == [30, 60, 120, 240, 480, 600]


def test_duplicate_task_sends_once(run, hook, django_capture_on_commit_callbacks):
    from webapp.notifications.tasks import notify_run

    set_prefs(run.created_by, webhook_url=hook.url)
    finish(run, Status.SUCCEEDED, django_capture_on_commit_callbacks)
    notify_run.delay(run.pk, "succeeded", "")
    notify_run.delay(run.pk, "succeeded", "")
    assert len(hook.requests) == 1
    assert len(mail.outbox) == 1
    assert NotificationDelivery.objects.filter(run=run).count() == 2  # one per channel


# --- where a webhook connects (DNS rebinding, proxies, TLS) ------------------------------------------


@pytest.fixture
def resolver(monkeypatch):
    """A DNS stand-in: names in .answers get their queued addresses (the last one repeats), in the
    getaddrinfo form of the real resolver; every other host (IP literals) resolves for real.
    .calls counts the lookups of each name."""
    real = socket.getaddrinfo

    class Resolver:
        answers: dict = {}
        calls: dict = {}

        def __call__(self, host, port, *args, **kwargs):
            if host not in self.answers:
                return real(host, port, *args, **kwargs)
            self.calls[host] = self.calls.get(host, 0) + 1
            queue = self.answers[host]
            address = queue.pop(0) if len(queue) > 1 else queue[0]
            return real(address, port, *args, **kwargs)

    fake = Resolver()
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return fake


def test_webhook_connects_to_the_address_it_validated_not_a_rebound_one(
    run, hook, resolver, settings, django_capture_on_commit_callbacks
):
    """The name answers a public address when checked and 127.0.0.1 right after (DNS rebinding): the
    POST goes to the public address (which refuses or times out here), never to the local server."""
    set_prefs(run.created_by, webhook_url=f"http://rebind.example:{hook.port}/hook", email_succeeded=False)
    settings.WEBHOOK_ALLOW_PRIVATE = False
    settings.WEBHOOK_TIMEOUT_SECONDS = 1
    settings.NOTIFY_MAX_ATTEMPTS = 1
    resolver.answers["rebind.example"] = ["93.184.216.34", "127.0.0.1"]
    finish(run, Status.SUCCEEDED, django_capture_on_commit_callbacks)
    assert hook.requests == []  # the local server was not reached
    assert resolver.calls["rebind.example"] == 1  # resolved once: at the check
    (d,) = deliveries(run, "webhook")
    assert d.status == "failed" and "93.184.216.34" in d.last_error


def test_webhook_to_a_pinned_address_keeps_its_host_name(run, hook, resolver, django_capture_on_commit_callbacks):
    """Pinning keeps the URL's name in the Host header; a later answer (127.0.0.2: nothing listens)
    is never used."""
    set_prefs(run.created_by, webhook_url=f"http://hooks.example:{hook.port}/hook")
    resolver.answers["hooks.example"] = ["127.0.0.1", "127.0.0.2"]
    finish(run, Status.SUCCEEDED, django_capture_on_commit_callbacks)
    assert len(hook.requests) == 1 and hook.requests[0][0]["Host"] == f"hooks.example:{hook.port}"
    assert resolver.calls["hooks.example"] == 1
    (d,) = deliveries(run, "webhook")
    assert (d.status, d.attempts) == ("sent", 1)


class RecordingProxy:
    """An HTTP proxy stand-in on 127.0.0.1 that records what it is asked and answers 502."""

    def __init__(self):
        self.requests = []
        proxy = self

        class Handler(QuietHandler):
            def _any(self):
                proxy.requests.append((self.command, self.path))
                self.send_response(502)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_POST = do_GET = do_CONNECT = _any  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_webhook_ignores_proxy_variables(run, hook, monkeypatch, django_capture_on_commit_callbacks):
    proxy = RecordingProxy()
    try:
        for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
            monkeypatch.setenv(var, proxy.url)
        for var in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(var, raising=False)
        set_prefs(run.created_by, webhook_url=hook.url)
        finish(run, Status.SUCCEEDED, django_capture_on_commit_callbacks)
    finally:
        proxy.close()
    assert proxy.requests == []
    assert len(hook.requests) == 1
    (d,) = deliveries(run, "webhook")
    assert d.status == "sent"


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    """Self-signed certificates (their own CA) for hooks.example and for other.example."""
    d = tmp_path_factory.mktemp("tls")
    for name in ("hooks.example", "other.example"):
        key, pem = d / f"{name}.key", d / f"{name}.pem"
        argv = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
                "-addext", f"subjectAltName=DNS:{name}", "-keyout", str(key), "-out", str(pem)]  # fmt: skip
        subprocess.run(argv, check=True, capture_output=True)
    return d


def tls_hook(certificates, name, seen):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificates / f"{name}.pem", certificates / f"{name}.key")
    context.sni_callback = lambda sock, server_name, ctx: seen.append(server_name)
    return Hook(tls=context)


@pytest.mark.parametrize("served", ["hooks.example", "other.example"])
def test_https_webhook_sends_and_checks_the_host_name(
    run, resolver, settings, certificates, served, django_capture_on_commit_callbacks
):
    """Connected to a pinned address, TLS still sends the URL's name (SNI) and checks the certificate
    against it: a certificate for another name is refused."""
    seen = []
    hook = tls_hook(certificates, served, seen)
    try:
        settings.WEBHOOK_CA_BUNDLE = str(certificates / f"{served}.pem")
        settings.NOTIFY_MAX_ATTEMPTS = 1
        resolver.answers["hooks.example"] = ["127.0.0.1"]
        set_prefs(run.created_by, webhook_url=f"https://hooks.example:{hook.port}/hook", email_succeeded=False)
        finish(run, Status.SUCCEEDED, django_capture_on_commit_callbacks)
    finally:
        hook.close()
    assert seen and set(seen) == {"hooks.example"}
    (d,) = deliveries(run, "webhook")
    if served == "hooks.example":
        assert d.status == "sent" and len(hook.requests) == 1
    else:
        assert d.status == "failed" and "SSLError" in d.last_error and hook.requests == []


def test_url_no_longer_allowed_at_send_time_is_final(run, settings, django_capture_on_commit_callbacks):
    set_prefs(run.created_by, webhook_url="http://127.0.0.1:9/hook", email_succeeded=False)
    settings.WEBHOOK_ALLOW_PRIVATE = False
    finish(run, Status.SUCCEEDED, django_capture_on_commit_callbacks)
    (d,) = deliveries(run, "webhook")
    assert (d.status, d.attempts) == ("failed", 1) and "URL refused" in d.last_error


def test_no_notifications_for_other_users_runs(run, bob, hook, django_capture_on_commit_callbacks):
    other, _ = bob
    other.email = "bob@example.com"
    other.save()
    Membership.objects.create(team=run.team, user=other)  # same team, not the submitter
    set_prefs(other, webhook_url=hook.url)
    set_prefs(run.created_by, email_succeeded=False)
    finish(run, Status.SUCCEEDED, django_capture_on_commit_callbacks)
    assert hook.requests == []
    assert mail.outbox == []
    assert not NotificationDelivery.objects.filter(user=other).exists()


def test_notification_problems_never_break_the_transition(run, monkeypatch, django_capture_on_commit_callbacks):
    from webapp.notifications.tasks import notify_run

    def broken(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(notify_run, "delay", broken)
    finish(run, Status.SUCCEEDED, django_capture_on_commit_callbacks)
    run.refresh_from_db()
    assert run.status == Status.SUCCEEDED and run.finished_at

    def worse(run):
        raise RuntimeError("bug")

    monkeypatch.setattr(services, "on_run_finished", worse)
    other = Run.objects.create(
        team=run.team, created_by=run.created_by, dataset=run.dataset, template="cnn", cluster=run.cluster
    )
    finish(other, Status.FAILED, django_capture_on_commit_callbacks)
    assert Run.objects.get(pk=other.pk).status == Status.FAILED


# --- the settings page -----------------------------------------------------------------------------

URL = "/accounts/notifications/"


def test_settings_page_requires_login(db):
    response = Client().get(URL)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    response = Client().post(URL, {"webhook_url": "https://example.com/"})
    assert response.status_code == 302
    assert not NotificationSettings.objects.exists()


def test_settings_page_shows_and_edits_only_own_settings(client_a, alice, bob, settings):
    assert reverse("notification_settings") == URL
    theirs = set_prefs(bob[0], webhook_url="https://93.184.216.34/bob", email_failed=False)
    response = client_a.get(URL)
    assert response.status_code == 200
    assert b"93.184.216.34" not in response.content
    response = client_a.post(
        URL,
        {"action": "save", "email_succeeded": "", "email_failed": "on", "email_stuck": "on", "user": bob[0].pk},
    )
    assert response.status_code == 302
    mine = NotificationSettings.objects.get(user=alice[0])
    assert (mine.email_succeeded, mine.email_failed, mine.webhook_url) == (False, True, "")
    theirs.refresh_from_db()
    assert (theirs.email_failed, theirs.webhook_url) == (False, "https://93.184.216.34/bob")


def test_webhook_secret_is_made_on_the_server_shown_once_and_rotatable(client_a, alice):
    data = {"action": "save", "email_failed": "on", "webhook_url": "https://93.184.216.34/hook"}
    response = client_a.post(URL, {**data, "webhook_secret": "chosen-by-client"})
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    prefs = NotificationSettings.objects.get(user=alice[0])
    assert len(prefs.webhook_secret) >= 32 and prefs.webhook_secret != "chosen-by-client"
    assert prefs.webhook_secret.encode() in response.content
    assert prefs.webhook_secret.encode() not in client_a.get(URL).content  # shown once
    assert client_a.post(URL, data).status_code == 302  # saving again keeps the secret
    prefs.refresh_from_db()
    old = prefs.webhook_secret
    response = client_a.post(URL, {"action": "rotate"})
    prefs.refresh_from_db()
    assert prefs.webhook_secret != old and prefs.webhook_secret.encode() in response.content


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/hook",
        "javascript:alert(1)",
        "http://user:pw@93.184.216.34/hook",
        "https://token@93.184.216.34/hook",
        "http://127.0.0.1:8000/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/hook",
    ],
)
def test_invalid_webhook_urls_are_refused(client_a, alice, settings, url):
    settings.WEBHOOK_ALLOW_PRIVATE = False
    response = client_a.post(URL, {"action": "save", "email_failed": "on", "webhook_url": url})
    assert response.status_code == 400
    assert not NotificationSettings.objects.filter(user=alice[0]).exclude(webhook_url="").exists()


def test_loopback_webhook_allowed_only_when_configured(client_a, alice, settings):
    data = {"action": "save", "webhook_url": "http://127.0.0.1:8000/hook"}
    settings.WEBHOOK_ALLOW_PRIVATE = False
    assert client_a.post(URL, data).status_code == 400
    settings.WEBHOOK_ALLOW_PRIVATE = True
    assert client_a.post(URL, data).status_code == 200  # saved; shows the new secret
    assert NotificationSettings.objects.get(user=alice[0]).webhook_url == "http://127.0.0.1:8000/hook"


def test_settings_form_needs_csrf(alice):
    c = Client(enforce_csrf_checks=True)
    c.force_login(alice[0])
    assert c.post(URL, {"action": "save", "email_failed": "on"}).status_code == 403
    page = c.get(URL)
    assert b"csrfmiddlewaretoken" in page.content
