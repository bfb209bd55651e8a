"""Deployment settings (webapp/settings.py, HTTPS region): `manage.py check --deploy` finds nothing with
DJANGO_DEBUG off and a production-like environment; SPARKDECK_INSECURE_HTTP=1 (make run, tests, docker
compose) serves plain http with working logins. Settings are read at import: each variant runs in a
child Python with its own environment."""

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import reverse

from tests.conftest import PASSWORD

REPO = Path(__file__).resolve().parents[2]
PRODUCTION = {
    "DJANGO_DEBUG": "0",
    "DJANGO_ALLOWED_HOSTS": "sparkdeck.example",
    "SPARKDECK_PUBLIC_URL": "https://sparkdeck.example",
}
DEPLOY_CHECK = (
    "import django; django.setup(); from django.core.management import call_command; "
    "call_command('check', deploy=True, fail_level='WARNING')"
)
SHOWN = (
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "SECURE_PROXY_SSL_HEADER",
    "SILENCED_SYSTEM_CHECKS",
)
SHOW = (
    "import json, django; django.setup(); from django.conf import settings as s; "
    f"print(json.dumps({{k: getattr(s, k, None) for k in {SHOWN!r}}}))"
)


def child(code, tmp_path, **env):
    """Run `code` in a child Python with the production-like environment plus `env` (None: unset)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SPARKDECK_", "DJANGO_"))}
    full = {
        **base,
        "DJANGO_SETTINGS_MODULE": "webapp.settings",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "SPARKDECK_VAR_DIR": str(tmp_path / "var"),
        **PRODUCTION,
        **env,
    }
    full = {k: v for k, v in full.items() if v is not None}
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=full, capture_output=True, text=True, timeout=120)


def test_deploy_check_passes_with_debug_off(tmp_path):
    proc = child(DEPLOY_CHECK, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "System check identified no issues" in proc.stdout + proc.stderr


def test_deploy_check_fails_on_plain_http_settings(tmp_path):
    """The same check with SPARKDECK_INSECURE_HTTP=1 (what make run uses) does warn: it is a real check."""
    proc = child(DEPLOY_CHECK, tmp_path, SPARKDECK_INSECURE_HTTP="1")
    assert proc.returncode != 0
    for check in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert check in proc.stderr, check


def test_secure_defaults_and_the_opt_outs(tmp_path):
    secure = json.loads(child(SHOW, tmp_path).stdout)
    assert secure["SESSION_COOKIE_SECURE"] and secure["CSRF_COOKIE_SECURE"] and secure["SECURE_SSL_REDIRECT"]
    assert secure["SECURE_HSTS_SECONDS"] == 365 * 24 * 3600 and secure["SECURE_PROXY_SSL_HEADER"] is None
    assert set(secure["SILENCED_SYSTEM_CHECKS"]) == {"security.W005", "security.W021"}
    plain = json.loads(child(SHOW, tmp_path, SPARKDECK_INSECURE_HTTP="1").stdout)
    assert not (plain["SESSION_COOKIE_SECURE"] or plain["CSRF_COOKIE_SECURE"] or plain["SECURE_SSL_REDIRECT"])
    assert plain["SECURE_HSTS_SECONDS"] == 0
    chosen = json.loads(
        child(
            SHOW,
            tmp_path,
            DJANGO_SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto",
            DJANGO_SECURE_HSTS_SECONDS="60",
            DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS="1",
            DJANGO_SECURE_HSTS_PRELOAD="1",
            DJANGO_SECURE_SSL_REDIRECT="0",
        ).stdout
    )
    assert chosen["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert chosen["SECURE_HSTS_SECONDS"] == 60 and chosen["SILENCED_SYSTEM_CHECKS"] == []
    assert chosen["SECURE_SSL_REDIRECT"] is False


@pytest.mark.parametrize(
    "env,message",
    [
        ({"DJANGO_SECURE_PROXY_SSL_HEADER": "X Forwarded"}, "not a header name"),
        ({"DJANGO_SECURE_PROXY_SSL_HEADER": "HTTP_"}, "not a header name"),
        ({"DJANGO_SECURE_HSTS_SECONDS": "-1"}, "DJANGO_SECURE_HSTS_SECONDS"),
        ({"DJANGO_SECURE_HSTS_SECONDS": "a year"}, "a year"),
        ({"SPARKDECK_API_TOKEN_RATE": "often"}, "SPARKDECK_API_TOKEN_RATE"),
        ({"SPARKDECK_LOGIN_FAILURE_LIMIT": "0"}, "SPARKDECK_LOGIN_FAILURE_LIMIT"),
    ],
)
def test_bad_values_stop_startup(tmp_path, env, message):
    proc = child(SHOW, tmp_path, **env)
    assert proc.returncode != 0 and message in proc.stderr


@pytest.mark.django_db
def test_https_settings_in_action(client, alice, settings):
    """What the secure settings do to requests: http is redirected (health checks excepted), the login
    cookie is Secure, HSTS is sent over HTTPS."""
    settings.SECURE_SSL_REDIRECT = True
    settings.SESSION_COOKIE_SECURE = True
    settings.SECURE_HSTS_SECONDS = 3600
    resp = client.get(reverse("login"))
    assert resp.status_code == 301 and resp["Location"].startswith("https://")
    assert client.get("/healthz").status_code == 200
    resp = client.post(reverse("login"), {"username": "alice", "password": PASSWORD}, secure=True)
    assert resp.status_code == 302 and resp.cookies["sessionid"]["secure"]
    assert resp["Strict-Transport-Security"] == "max-age=3600"


@pytest.mark.django_db
def test_plain_http_login_works_as_in_make_run(client, alice, settings):
    """The tests run with SPARKDECK_INSECURE_HTTP=1, as `make run` does: login over plain http."""
    assert not settings.SESSION_COOKIE_SECURE and not settings.SECURE_SSL_REDIRECT
    resp = client.post(reverse("login"), {"username": "alice", "password": PASSWORD})
    assert resp.status_code == 302 and not resp.cookies["sessionid"]["secure"]
    assert client.get(reverse("dashboard")).status_code == 200


def test_production_hashes_passwords_at_django_s_iteration_count_and_verifies_the_tests_hashes(tmp_path):
    """The suite hashes its users cheaply (tests/conftest.py); the product's settings, read by a fresh
    process as the stack's gunicorn and Celery read them, keep Django's PBKDF2 and verify such a hash."""
    from django.contrib.auth.hashers import make_password

    fast = make_password("pw")
    assert fast.startswith("pbkdf2_sha256$1000$")  # this process: the tests' hasher
    probe = (
        "import django, json; django.setup();"
        "from django.contrib.auth.hashers import check_password, get_hasher;"
        "h = get_hasher(); print(json.dumps([type(h).__module__, h.algorithm, h.iterations,"
        f" check_password('pw', {fast!r}), check_password('no', {fast!r})]))"
    )
    proc = child(probe, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    module, algorithm, iterations, good, bad = json.loads(proc.stdout.strip().splitlines()[-1])
    assert module == "django.contrib.auth.hashers" and algorithm == "pbkdf2_sha256"
    assert iterations >= 1_000_000
    assert good is True and bad is False
