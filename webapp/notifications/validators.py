"""Webhook URLs: http(s) only, no credentials, and (unless SPARKDECK_WEBHOOK_ALLOW_PRIVATE=1) no host that
is or resolves to a private, loopback, link-local or otherwise non-public address."""

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError


def _addresses(host: str) -> list[ipaddress._BaseAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise ValidationError(f"The host {host!r} could not be resolved.", code="unresolvable") from exc
    return [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]


def _public(addr) -> bool:
    if getattr(addr, "ipv4_mapped", None):
        addr = addr.ipv4_mapped
    return addr.is_global and not addr.is_multicast


def validate_webhook_url(url: str) -> None:
    """Raise ValidationError when `url` may not receive webhooks."""
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError on a bad port
    except ValueError as exc:
        raise ValidationError("Not a valid URL.") from exc
    if parts.scheme not in ("http", "https"):
        raise ValidationError("The webhook URL must start with http:// or https://.")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise ValidationError("The webhook URL must not contain credentials (user:password@).")
    host = parts.hostname
    if not host:
        raise ValidationError("The webhook URL has no host.")
    if port == 0:
        raise ValidationError("Not a valid port.")
    if settings.WEBHOOK_ALLOW_PRIVATE:
        return
    if host.rstrip(".").lower() == "localhost" or host.rstrip(".").lower().endswith(".localhost"):
        raise ValidationError("The webhook URL must not point to this machine.")
    for addr in _addresses(host):
        if not _public(addr):
            raise ValidationError(
                f"The webhook host resolves to {addr}, a private, loopback or reserved address; "
                "only public hosts can receive webhooks."
            )
