"""Webhook URLs: http(s) only, no credentials, and (unless SPARKDECK_WEBHOOK_ALLOW_PRIVATE=1) no host that
is or resolves to a private, loopback, link-local or otherwise non-public address.

Delivery resolves the host once with resolve_webhook() and connects to those very addresses
(services.py), so a name that answers a public address here and a private one a moment later
(DNS rebinding) cannot steer the POST to this machine or its network.
"""

import ipaddress
import socket
from dataclasses import dataclass
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


@dataclass(frozen=True)
class WebhookTarget:
    """Where a webhook goes: the URL's parts and the addresses its host resolved to (all allowed)."""

    scheme: str
    host: str  # the name for the Host header, TLS SNI and the certificate check
    netloc: str  # host[:port] as the URL has it: the Host header
    addresses: tuple[str, ...]


def _parse(url: str):
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
    return parts, host


def _check_name(host: str) -> None:
    if host.rstrip(".").lower() == "localhost" or host.rstrip(".").lower().endswith(".localhost"):
        raise ValidationError("The webhook URL must not point to this machine.")


def _check_public(addresses) -> None:
    for addr in addresses:
        if not _public(addr):
            raise ValidationError(
                f"The webhook host resolves to {addr}, a private, loopback or reserved address; "
                "only public hosts can receive webhooks."
            )


def validate_webhook_url(url: str) -> None:
    """Raise ValidationError when `url` may not receive webhooks."""
    parts, host = _parse(url)
    if settings.WEBHOOK_ALLOW_PRIVATE:
        return
    _check_name(host)
    _check_public(_addresses(host))


def resolve_webhook(url: str) -> WebhookTarget:
    """Validate `url` and resolve its host once: the addresses to connect to (ValidationError with code
    "unresolvable" when the name does not resolve now)."""
    parts, host = _parse(url)
    if not settings.WEBHOOK_ALLOW_PRIVATE:
        _check_name(host)
    addresses = _addresses(host)
    if not settings.WEBHOOK_ALLOW_PRIVATE:
        _check_public(addresses)
    unique = tuple(dict.fromkeys(str(a) for a in addresses))
    return WebhookTarget(scheme=parts.scheme, host=host, netloc=parts.netloc, addresses=unique)
