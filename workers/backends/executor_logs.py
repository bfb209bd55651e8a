"""Copy a standalone application's executor logs from its Spark workers into `<run dir>/executors/`.

Django-free. Files there (all but the copies written atomically, under `.lock`):
- `<exec>/stdout`, `<exec>/stderr`: the copies, only ever appended to;
- `offsets.json` {"<exec>/<stream>": bytes copied};
- `sources.json` {"<exec>": {"ui": "<worker web UI>", "app_id": "app-…"}}: where each executor's logs
  are served, recorded as soon as the executor is seen: from the driver's list of every executor the
  application ever had, or (driver gone, UI disabled) from the `/json/` of the workers already known
  and of those the master lists. Later copies go straight to these
  workers: a restarted master (no recovery mode) lists no workers until they re-register, which takes
  them from seconds to minutes, so the master's live worker list cannot be what the copy depends on;
- `status.json` {"<exec>/<stream>": {"complete": bool, "copied": n, "total": n | null, "reason": "…",
  "final": bool}}: each log as of the last copy. `complete` = the copy has every byte the worker's file
  had (offset == total from the `/log/` header); `reason` says why not when something stood in the way;
  `final` = written by the copy made after the application ended (a complete final log is not asked
  for again).

Endpoints (verified on pyspark 4.3.0):
- master:  GET <rest_url>/json/ -> {"workers": [{"webuiaddress", "state"}, ...]}
- worker:  GET <ui>/json/ -> {"executors": [{"id", "appid"}], "finishedexecutors": [...]}
           GET <ui>/log/?appId=..&executorId=..&logType=..&offset=N&byteLength=M
               -> "==== Bytes <start>-<end> of <total> of <path> ====\\n" + raw bytes; for a log it
               does not have "==== Bytes 0-0 of 0 of <path> ====\\nError: invalid log directory <dir>"
- driver:  GET <driver ui>/api/v1/applications/<app id>/allexecutors
               -> [{"id": "0", "executorLogs": {"stderr": "<worker ui>/logPage/?appId=..&executorId=0&logType=stderr"}}]

Work per call is bounded: short timeouts, one failed request per worker (it is skipped for the rest of
the call), at most LIVE_MAX_CHUNKS (FINAL_MAX_CHUNKS in the final copy) requests per log.
"""

from __future__ import annotations

import fcntl
import json
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import requests

from workers.launcher import write_atomic

STREAMS = ("stdout", "stderr")
OFFSETS_NAME = "offsets.json"
SOURCES_NAME = "sources.json"
STATUS_NAME = "status.json"
LOCK_NAME = ".lock"

LOG_CHUNK = 1024 * 1024  # bytes per /log/ request
LIVE_MAX_CHUNKS = 32  # per log per call while the run is alive: the next call continues
FINAL_MAX_CHUNKS = 1024  # per log in the final copy: a longer log is marked incomplete, with that reason
FOLLOW_TIMEOUT = 1.0  # follow() runs inside the run page's poll: never hold it up long
CONNECT_TIMEOUT = 1.0  # a host that is down must not cost a full read timeout per call
HEADER_RE = re.compile(rb"==== Bytes (\d+)-(\d+) of (\d+) of .*====")


@dataclass(frozen=True)
class Source:
    ui: str  # the worker's web UI, e.g. http://127.0.0.1:8081
    app_id: str

    @property
    def host(self) -> str:
        return urlsplit(self.ui).netloc or self.ui


class WorkerDown(Exception):
    """A worker did not answer; the message is the reason shown next to its logs."""


def copied_files(out_dir: Path) -> list[Path]:
    return sorted(p for p in out_dir.glob("*/*") if p.name in STREAMS)


def read_status(out_dir: Path) -> dict[str, dict]:
    """status.json as {"<exec>/<stream>": entry}; {} when there is none (or it is unreadable)."""
    return {k: v for k, v in _read_json(out_dir / STATUS_NAME).items() if isinstance(v, dict)}


class LogCopier:
    def __init__(
        self,
        run_dir: str | Path,
        app_id: str,
        *,
        rest_url: str | None = None,
        driver_ui: str | None = None,
        timeout: float = 3.0,
    ):
        self.out_dir = Path(run_dir) / "executors"
        self.app_id = app_id
        self.rest_url = (rest_url or "").rstrip("/") or None
        self.driver_ui = (driver_ui or "").rstrip("/") or None
        self.timeout = timeout
        self._down: dict[str, str] = {}  # worker UI -> reason, for the current call only

    # -- public ----------------------------------------------------------------------------------

    def collect(self, final: bool = False) -> list[Path]:
        """Find every executor of the application and bring each log's copy up to date; with
        `final` (the application has ended) fetch every log to its end and mark what is missing."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with open(self.out_dir / LOCK_NAME, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # two reconcilers must not append the same bytes
            self._down = {}
            sources = self._discover(self._read_sources())
            offsets = _read_json(self.out_dir / OFFSETS_NAME)
            status = read_status(self.out_dir)
            budget = FINAL_MAX_CHUNKS if final else LIVE_MAX_CHUNKS
            for exec_id, source in sources.items():
                for stream in STREAMS:
                    key = f"{exec_id}/{stream}"
                    done = status.get(key, {})
                    if done.get("final") and done.get("complete"):
                        continue  # whole after the application ended: it cannot grow any more
                    offsets[key], status[key] = self._copy(source, exec_id, stream, offsets.get(key, 0), budget, final)
            write_atomic(self.out_dir / OFFSETS_NAME, json.dumps(offsets))
            write_atomic(self.out_dir / STATUS_NAME, json.dumps(status, indent=1))
        return copied_files(self.out_dir)

    def follow(self, exec_id: str, stream: str) -> None:
        """One chunk of one log, now (the run page's live tail); never waits for a running copy."""
        if stream not in STREAMS or not self.out_dir.is_dir():
            return
        source = self._read_sources().get(str(exec_id))
        if source is None:
            return  # not seen by collect() yet: its next call finds the executor's worker
        with open(self.out_dir / LOCK_NAME, "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return  # collect() is copying right now
            self._down = {}
            key = f"{exec_id}/{stream}"
            offsets = _read_json(self.out_dir / OFFSETS_NAME)
            offsets[key], _entry = self._copy(
                source, str(exec_id), stream, offsets.get(key, 0), 1, False, timeout=FOLLOW_TIMEOUT
            )
            write_atomic(self.out_dir / OFFSETS_NAME, json.dumps(offsets))

    # -- discovery -------------------------------------------------------------------------------

    def _read_sources(self) -> dict[str, Source]:
        sources = {}
        for exec_id, raw in _read_json(self.out_dir / SOURCES_NAME).items():
            if isinstance(raw, str):  # written before app ids were recorded: this run's own app
                sources[exec_id] = Source(raw.rstrip("/"), self.app_id)
            elif isinstance(raw, dict) and raw.get("ui"):
                sources[exec_id] = Source(str(raw["ui"]).rstrip("/"), str(raw.get("app_id") or self.app_id))
        return sources

    def _discover(self, sources: dict[str, Source]) -> dict[str, Source]:
        """Known sources plus every executor of the app seen now; recorded before any log is
        fetched, so an outage later in this call cannot lose them. The driver's list is complete
        (every executor the application ever had); the workers are asked only when it is not there
        (driver gone, UI disabled)."""
        found = dict(sources)
        listing = self._driver_executors()
        if listing is None:
            uis = {s.ui for s in sources.values()} | set(self._master_workers())
            listing = [pair for ui in sorted(uis) for pair in self._worker_executors(ui)]
        for exec_id, ui in listing:
            found.setdefault(exec_id, Source(ui, self.app_id))
        if found != sources:
            raw = {k: {"ui": s.ui, "app_id": s.app_id} for k, s in found.items()}
            write_atomic(self.out_dir / SOURCES_NAME, json.dumps(raw, indent=1))
        return found

    def _driver_executors(self) -> list[tuple[str, str]] | None:
        """(executor id, worker UI) of every executor the driver ever had; None if it did not answer."""
        if not self.driver_ui:
            return None
        listing = self._get_json(f"{self.driver_ui}/api/v1/applications/{self.app_id}/allexecutors", None)
        if not isinstance(listing, list):
            return None
        out = []
        for ex in listing:
            if not isinstance(ex, dict) or ex.get("id") in (None, "driver"):
                continue
            pair = self._log_source(ex)
            if pair is None:
                return None  # an executor without a usable log address: the workers know where it is
            out.append(pair)
        return out

    def _log_source(self, ex: dict) -> tuple[str, str] | None:
        for url in (ex.get("executorLogs") or {}).values():
            # <worker UI>/logPage/?appId=..&executorId=..&logType=..; the UI may sit under a reverse
            # proxy's path, so the UI is everything before /logPage/.
            if isinstance(url, str) and "/logPage/" in url:
                query = parse_qs(urlsplit(url).query)
                if query.get("appId", [""])[0] == self.app_id:
                    return query.get("executorId", [str(ex["id"])])[0], url[: url.index("/logPage/")]
        return None

    def _master_workers(self) -> list[str]:
        if not self.rest_url:
            return []
        state = self._get_json(f"{self.rest_url}/json/", None)
        workers = state.get("workers", []) if isinstance(state, dict) else []
        return [
            w["webuiaddress"].rstrip("/")
            for w in workers
            if isinstance(w, dict) and w.get("webuiaddress") and w.get("state") != "DEAD"
        ]

    def _worker_executors(self, ui: str) -> list[tuple[str, str]]:
        info = self._get_json(f"{ui}/json/", ui)
        if not isinstance(info, dict):
            return []
        executors = (info.get("executors") or []) + (info.get("finishedexecutors") or [])
        return [
            (str(ex["id"]), ui)
            for ex in executors
            if isinstance(ex, dict) and ex.get("appid") == self.app_id and "id" in ex
        ]

    def _get_json(self, url: str, worker_ui: str | None):
        try:
            resp = self._get(url, worker_ui, self.timeout)
            return resp.json()
        except (WorkerDown, ValueError):
            return None

    # -- copying ---------------------------------------------------------------------------------

    def _get(self, url: str, worker_ui: str | None, timeout: float, **params) -> requests.Response:
        """GET with short timeouts; a worker that failed once in this call is not asked again."""
        if worker_ui in self._down:
            raise WorkerDown(self._down[worker_ui])
        try:
            resp = requests.get(url, params=params or None, timeout=(min(CONNECT_TIMEOUT, timeout), timeout))
            resp.raise_for_status()
            return resp
        except requests.RequestException as exc:
            host = urlsplit(url).netloc
            if isinstance(exc, requests.HTTPError):
                reason = f"worker {host} answered HTTP {exc.response.status_code}"
            else:
                reason = f"worker {host} not reachable ({type(exc).__name__})"
            if worker_ui:
                self._down[worker_ui] = reason
            raise WorkerDown(reason) from exc

    def _copy(
        self,
        source: Source,
        exec_id: str,
        stream: str,
        offset: int,
        chunks: int,
        final: bool,
        timeout: float | None = None,
    ) -> tuple[int, dict]:
        """Append bytes [offset, end) of one log to its copy; (new offset, status entry)."""
        dest = self.out_dir / exec_id / stream
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.touch()
        total = None
        reason = ""
        params = {"appId": source.app_id, "executorId": exec_id, "logType": stream, "byteLength": LOG_CHUNK}
        for _ in range(chunks):
            try:
                resp = self._get(f"{source.ui}/log/", source.ui, timeout or self.timeout, **params, offset=offset)
            except WorkerDown as exc:
                reason = str(exc)
                break
            header, _, body = resp.content.partition(b"\n")
            m = HEADER_RE.match(header)
            if not m:
                first = header.decode(errors="replace").strip()[:120]
                reason = f"worker {source.host} answered without a log header ({first or 'nothing'})"
                break
            start, end, total = (int(g) for g in m.groups())
            if end == start and body.strip():
                # A log the worker does not have: "Bytes 0-0 of 0" and "Error: invalid log directory …".
                first = body.decode(errors="replace").strip().splitlines()[0][:120]
                reason = f"worker {source.host} has no such log ({first})"
                break
            if start != offset:
                # The worker clamps the range to its file: a file shorter than the copy was replaced.
                reason = f"worker {source.host} answered bytes {start}-{end} for offset {offset}"
                break
            if end > offset:
                with open(dest, "ab") as f:
                    f.write(body)
                offset = end
            if offset >= total:
                break
        complete = total is not None and offset >= total and not reason
        if final and not complete and not reason:
            reason = f"copied {offset} of {total} bytes: the rest is over the copy limit of one call"
        entry = {"complete": complete, "copied": offset, "total": total, "reason": reason, "final": final}
        return offset, entry


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
