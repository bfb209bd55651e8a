"""Login throttling (django-axes, webapp/settings.py) and the API token page's throttle (DRF).

django-axes counts failed logins per (username, client address) in the database; at the limit that
pair is locked for the cool-off (429, the right password refused too), other users are not, and a
successful login before the limit clears the count.
"""

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

LOGIN = reverse("login")


@pytest.fixture(autouse=True)
def limits(settings):
    settings.AXES_FAILURE_LIMIT = 3
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)


def attempt(client, username, password, ip="10.0.0.1"):
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=ip)


def logged_in(client) -> bool:
    return client.get(reverse("dashboard")).status_code == 200


def test_wrong_passwords_lock_out_that_user_with_a_clear_message(alice):
    c = Client()
    for _ in range(2):
        resp = attempt(c, "alice", "wrong")
        assert resp.status_code == 200 and "Wrong username or password" in resp.content.decode()
    resp = attempt(c, "alice", "wrong")  # the third: the limit
    assert resp.status_code == 429
    page = resp.content.decode()
    assert "Too many login attempts" in page and "locked after 3 wrong passwords" in page and "0:15:00" in page
    resp = attempt(c, "alice", PASSWORD)  # the right password during the lockout
    assert resp.status_code == 429 and not logged_in(c)


def test_other_users_and_other_addresses_are_not_locked(alice, bob):
    for _ in range(3):
        attempt(Client(), "alice", "wrong")
    assert attempt(Client(), "alice", PASSWORD).status_code == 429
    other_user = Client()
    assert attempt(other_user, "bob", PASSWORD).status_code == 302 and logged_in(other_user)
    elsewhere = Client()  # alice herself, from another address
    assert attempt(elsewhere, "alice", PASSWORD, ip="10.0.0.2").status_code == 302 and logged_in(elsewhere)


def test_a_successful_login_resets_the_count(alice):
    c = Client()
    for _ in range(2):
        attempt(c, "alice", "wrong")
    assert attempt(c, "alice", PASSWORD).status_code == 302
    c.logout()
    for _ in range(2):  # two more wrong ones: 2, not 4, so no lockout
        assert attempt(c, "alice", "wrong").status_code == 200
    assert attempt(c, "alice", PASSWORD).status_code == 302


def test_lockout_ends_after_the_cool_off(alice, settings):
    from axes.models import AccessAttempt

    for _ in range(3):
        attempt(Client(), "alice", "wrong")
    assert attempt(Client(), "alice", PASSWORD).status_code == 429
    AccessAttempt.objects.update(attempt_time=AccessAttempt.objects.get().attempt_time - timedelta(minutes=16))
    assert attempt(Client(), "alice", PASSWORD).status_code == 302


def test_admin_login_is_throttled_too(make_member):
    user, _ = make_member("root", "Ops")
    user.is_staff = user.is_superuser = True
    user.save()
    url = reverse("admin:login")
    for _ in range(3):
        Client().post(url, {"username": "root", "password": "wrong"}, REMOTE_ADDR="10.0.0.9")
    resp = Client().post(url, {"username": "root", "password": PASSWORD}, REMOTE_ADDR="10.0.0.9")
    assert resp.status_code == 429


def test_force_login_is_not_counted(alice):
    """Tests (and the e2e/browser fixtures) that log in without a password are untouched."""
    for _ in range(10):
        c = Client()
        c.force_login(alice[0])
        assert logged_in(c)


def test_token_page_throttles_new_keys(client_a, settings):
    settings.API_TOKEN_RATE = "2/hour"
    cache.clear()
    try:
        for _ in range(2):
            resp = client_a.post(reverse("api:token"), {"action": "issue"})
            assert resp.status_code == 200 and b"Your new token" in resp.content
        resp = client_a.post(reverse("api:token"), {"action": "issue"})
        assert resp.status_code == 429 and int(resp["Retry-After"]) > 0
        assert "Too many new tokens" in resp.content.decode() and b"Your new token" not in resp.content
    finally:
        cache.clear()
