"""The REST API over HTTP (requests), with every failure turned into one clear message (ApiError)."""

import os
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import requests

TIMEOUT = (10, 60)  # connect, read (seconds)
CHUNK = 256 * 1024
USER_AGENT = "sparkdeck-cli"


class ApiError(Exception):
    """A failed request, said for the user. `status` is the HTTP status (None: no answer at all)."""

    def __init__(self, message: str, status: int | None = None, body=None):
        super().__init__(message)
        self.status, self.body = status, body


def describe(body) -> str:
    """The API's error body as one line: {"detail": ...} or {"field": ["message", ...], ...}."""
    if isinstance(body, dict):
        if set(body) == {"detail"}:
            return str(body["detail"])
        parts = []
        for field, messages in body.items():
            text = "; ".join(str(m) for m in messages) if isinstance(messages, list) else str(messages)
            parts.append(text if field in ("detail", "non_field_errors") else f"{field}: {text}")
        return "; ".join(parts)
    if isinstance(body, list):
        return "; ".join(str(m) for m in body)
    return str(body)


class Api:
    def __init__(self, url: str, token: str | None, session: requests.Session | None = None):
        self.url = url.rstrip("/")
        self.token = token
        self.session = session or requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        if token:
            self.session.headers["Authorization"] = f"Token {token}"

    def absolute(self, path_or_url: str) -> str:
        """A path under the server, or a URL the API answered. A URL on another origin (the server
        behind a proxy names its own host) keeps its path but goes to our server: the token is only
        ever sent to the URL the user logged in to."""
        if "://" not in path_or_url:
            return urljoin(self.url + "/", path_or_url.lstrip("/"))
        if path_or_url.startswith(self.url + "/"):
            return path_or_url
        parts = urlsplit(path_or_url)
        base = urlsplit(self.url)
        return f"{base.scheme}://{base.netloc}{parts.path}" + (f"?{parts.query}" if parts.query else "")

    def request(self, method: str, path: str, *, stream=False, expect_json=True, **kwargs):
        url = self.absolute(path)
        kwargs.setdefault("timeout", TIMEOUT)
        try:
            resp = self.session.request(method, url, stream=stream, **kwargs)
        except requests.exceptions.ConnectionError as exc:
            if isinstance(exc, requests.exceptions.ConnectTimeout):
                raise ApiError(f"cannot reach {self.url}: no answer within {TIMEOUT[0]} s.") from None
            raise ApiError(
                f"cannot reach {self.url}: is Sparkdeck running there? (Set it with `sparkdeck login --url` "
                "or SPARKDECK_URL.)"
            ) from None
        except requests.exceptions.Timeout:
            raise ApiError(f"{self.url} did not answer within {TIMEOUT[1]} s.") from None
        except requests.exceptions.RequestException as exc:
            raise ApiError(f"request to {url} failed: {exc}") from None
        if resp.status_code >= 400:
            raise self._error(resp)
        if not expect_json:
            return resp
        try:
            return resp.json()
        except ValueError:
            raise ApiError(
                f"{url} did not answer JSON (HTTP {resp.status_code}): is {self.url} a Sparkdeck server?",
                resp.status_code,
            ) from None

    def _error(self, resp) -> ApiError:
        try:
            body = resp.json()
        except ValueError:
            body = None
        detail = describe(body) if body not in (None, "", {}) else ""
        code = resp.status_code
        if code == 401:
            why = f" ({detail})" if detail else ""
            return ApiError(f"not logged in to {self.url}{why}: run `sparkdeck login`.", code, body)
        if code == 403:
            return ApiError(f"forbidden: {detail or 'your role does not allow this.'}", code, body)
        if code == 404:
            what = urlsplit(resp.url).path
            return ApiError(f"not found: {what}" + (f" ({detail})" if detail else ""), code, body)
        if code == 429:
            after = resp.headers.get("Retry-After")
            return ApiError(f"too many requests{f', retry in {after} s' if after else ''}: {detail}", code, body)
        if code >= 500:
            return ApiError(f"the server failed (HTTP {code}){': ' + detail if detail else ''}.", code, body)
        return ApiError(detail or f"HTTP {code} from {urlsplit(resp.url).path}", code, body)

    def get(self, path: str, **params):
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, json=None):
        return self.request("POST", path, json=json)

    # ------------------------------------------------------------ streaming

    def upload(self, path: str, body: "MultipartBody"):
        headers = {"Content-Type": body.content_type, "Content-Length": str(len(body))}
        return self.request("POST", path, data=body, headers=headers, timeout=(TIMEOUT[0], 600))

    def download(self, url: str, dest: Path, progress_factory: Callable[[int | None], object]) -> int:
        """Stream `url` into `dest` (written beside it first, renamed once complete); returns bytes."""
        resp = self.request("GET", url, stream=True, expect_json=False)
        total = resp.headers.get("Content-Length")
        total = int(total) if total and total.isdigit() else None
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.part")
        written = 0
        try:
            with resp, open(tmp, "wb") as fh, progress_factory(total) as bar:
                for chunk in resp.iter_content(CHUNK):
                    fh.write(chunk)
                    written += len(chunk)
                    bar.update(len(chunk))
            if total is not None and written != total:
                raise ApiError(f"download cut short: {written} of {total} bytes.")
            os.replace(tmp, dest)
        except requests.exceptions.RequestException as exc:
            raise ApiError(f"download failed: {exc}") from None
        finally:
            if tmp.exists():
                tmp.unlink()
        return written


def _quote(value: str) -> str:
    # A field or file name inside the Content-Disposition's quotes (as browsers escape them).
    return value.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


class MultipartBody:
    """multipart/form-data read in chunks, with its length known up front: the file is never held in
    memory, and Content-Length is sent (Django reads no chunked request body)."""

    def __init__(self, fields: dict[str, str], files: dict[str, Path], progress: Callable[[int], None] | None = None):
        self.boundary = uuid.uuid4().hex
        self.content_type = f"multipart/form-data; boundary={self.boundary}"
        self.progress = progress
        self.parts: list[bytes | Path] = []
        for name, value in fields.items():
            head = f'--{self.boundary}\r\nContent-Disposition: form-data; name="{_quote(name)}"\r\n\r\n'
            self.parts.append(head.encode() + str(value).encode() + b"\r\n")
        for name, path in files.items():
            head = (
                f"--{self.boundary}\r\n"
                f'Content-Disposition: form-data; name="{_quote(name)}"; filename="{_quote(path.name)}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n"
            )
            self.parts += [head.encode(), path, b"\r\n"]
        self.parts.append(f"--{self.boundary}--\r\n".encode())
        self.length = sum(p.stat().st_size if isinstance(p, Path) else len(p) for p in self.parts)

    def __len__(self) -> int:
        return self.length

    def _report(self, n: int) -> None:
        if self.progress is not None:
            self.progress(n)

    def __iter__(self) -> Iterable[bytes]:
        for part in self.parts:
            if isinstance(part, bytes):
                self._report(len(part))
                yield part
                continue
            with open(part, "rb") as fh:
                while chunk := fh.read(CHUNK):
                    self._report(len(chunk))
                    yield chunk
