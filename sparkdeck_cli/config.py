"""Where the CLI finds the server and its token: SPARKDECK_URL / SPARKDECK_TOKEN, else the file
`sparkdeck login` wrote ($XDG_CONFIG_HOME/sparkdeck/config.json, mode 0600)."""

import json
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_URL = "http://127.0.0.1:8000"
URL_ENV = "SPARKDECK_URL"
TOKEN_ENV = "SPARKDECK_TOKEN"


class ConfigError(Exception):
    """A problem the user fixes (no login yet, a bad URL, an unreadable config file)."""


@dataclass
class Settings:
    url: str | None
    token: str | None


def config_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "sparkdeck"


def config_path() -> Path:
    return config_dir() / "config.json"


def normalize_url(url: str) -> str:
    """The server's base URL without a trailing slash; only http(s) with a host is taken."""
    url = (url or "").strip()
    if "://" not in url:
        url = "http://" + url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"Not a server URL: {url!r} (e.g. {DEFAULT_URL}).")
    if parts.query or parts.fragment:
        raise ConfigError(f"The server URL takes no query or fragment: {url!r}.")
    return url.rstrip("/")


def read_file(path: Path | None = None) -> dict:
    path = path or config_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"Cannot read {path}: {exc}. Run `sparkdeck login` again.") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is not a Sparkdeck config. Run `sparkdeck login` again.")
    return data


def load() -> Settings:
    """The environment overrides the file, each value on its own."""
    data = read_file()
    env_url, env_token = os.environ.get(URL_ENV), os.environ.get(TOKEN_ENV)
    url = env_url or data.get("url")
    token = env_token or data.get("token")
    return Settings(url=normalize_url(url) if url else None, token=token or None)


def save(url: str, token: str, path: Path | None = None) -> Path:
    """Write url + token readable by the user only (the file is created 0600, never widened)."""
    path = path or config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({"url": url, "token": token}, fh, indent=2)
        fh.write("\n")
    os.chmod(tmp, 0o600)  # an older .tmp left behind may have had another mode
    os.replace(tmp, path)
    return path
