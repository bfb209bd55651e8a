"""Log a browser page in as alice through the real login form, landing on `url`."""

from tests.conftest import PASSWORD


def log_in_at(page, url: str, username: str = "alice") -> None:
    page.goto(url)  # the login page, which comes back to `url`
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_url(url)
