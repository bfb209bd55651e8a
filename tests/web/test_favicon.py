"""The site's icon: named by every page, and /favicon.ico (asked for by browsers wherever a page names
none) answers with it, without a login."""

import pytest
from django.test import Client


@pytest.mark.django_db
def test_favicon_ico_redirects_to_the_static_icon_without_a_login(client_a):
    resp = Client().get("/favicon.ico")
    assert resp.status_code == 301
    icon = resp["Location"]
    assert icon.startswith("/static/favicon") and icon.endswith(".svg")
    served = Client().get(icon)
    assert served.status_code == 200 and served["Content-Type"].startswith("image/svg+xml")
    assert b"<svg" in b"".join(served.streaming_content)
    page = client_a.get("/").content.decode()
    assert f'<link rel="icon" href="{icon}" type="image/svg+xml">' in page
