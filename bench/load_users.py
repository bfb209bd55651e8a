"""The users of the load bench (bench/load.py), a locustfile: run by locust from the bench's own venv
(bench/requirements.txt), never imported by the product.

Each user is a person logged in (a session made by the bench: SPARKDECK_LOAD_PLAN names a JSON file
with the cookies, the run ids and where to write the results) who, between pauses of
SPARKDECK_LOAD_WAIT seconds ("1,3": the run page polls every 1 s, the run table every 3 s), opens the
run table, a run page, the datasets list, or polls live.json as the run page does (new points since
the last answer, from the newest point when the phase began, as after the page's series.json; the
driver log from the last offset). Redirects are not followed: a session that
stopped being logged in shows as a failure, not as the login page's 200.

Every request is recorded (name, ms, status, error kind) and written to the plan's `out` file when
the test stops; bench/load.py computes the figures from that, not from locust's rounded ones.
"""

import itertools
import json
import os
import random

from locust import HttpUser, between, events, task

PLAN = json.loads(open(os.environ["SPARKDECK_LOAD_PLAN"]).read())
WAIT = [float(x) for x in os.environ.get("SPARKDECK_LOAD_WAIT", "1,3").split(",")]
SESSIONS = itertools.cycle(PLAN["sessions"])
RECORDS = []


def error_kind(exc) -> str:
    """'connection' for a connection refused, reset or closed without an answer; else the class name."""
    seen = exc
    while seen is not None:
        if isinstance(seen, (ConnectionError, TimeoutError)) or type(seen).__name__ in (
            "ConnectionError",
            "RemoteDisconnected",
            "ProtocolError",
            "ConnectTimeout",
            "ReadTimeout",
            "ChunkedEncodingError",
        ):
            return "connection"
        seen = seen.__cause__ or seen.__context__ or (seen.args[1] if len(seen.args) > 1 else None)
        if not isinstance(seen, BaseException):
            seen = None
    return type(exc).__name__


@events.request.add_listener
def record(request_type, name, response_time, response_length, response=None, exception=None, **_):
    status = getattr(response, "status_code", 0) or 0
    detail = ""
    if exception is not None and status in (0, None):
        detail = f"{type(exception).__name__}: {exception}"[:200]
    RECORDS.append(
        {
            "name": name,
            "ms": response_time,
            "status": status,
            "error": error_kind(exception) if exception is not None and not status else "",
            "detail": detail,
        }
    )


@events.test_stop.add_listener
def dump(**_):
    with open(PLAN["out"], "w") as f:
        json.dump(RECORDS, f)


class Person(HttpUser):
    wait_time = between(*WAIT)

    def on_start(self):
        self.client.cookies.set(PLAN["cookie_name"], next(SESSIONS))
        # The page loads the chart's series first and polls live.json from its last point on.
        self.since = PLAN["since"]
        self.offset = None

    def get(self, url, name, **params):
        with self.client.get(url, params=params or None, name=name, allow_redirects=False, catch_response=True) as r:
            if not r.status_code and r.error:
                r.failure(r.error)  # no answer: keep the connection error itself, not a generic one
            elif r.status_code != 200:
                r.failure(f"HTTP {r.status_code}")
            return r

    def a_run(self) -> int:
        # Half the visits go to the run that trains (its page has a chart and a log that grow).
        return PLAN["training"] if random.random() < 0.5 else random.choice(PLAN["queued"])

    @task(2)
    def run_table(self):
        self.get("/", "run table")

    @task(2)
    def run_page(self):
        self.get(f"/runs/{self.a_run()}/", "run page")

    @task(5)
    def live(self):
        params = {"since": self.since, "log": "driver"}
        if self.offset is not None:
            params["off:driver"] = self.offset
        r = self.get(f"/runs/{PLAN['training']}/live.json", "live.json", **params)
        if r.status_code == 200:
            try:
                data = r.json()
            except ValueError:
                return
            self.since = max([self.since] + [p["id"] for p in data.get("points", [])])
            chunk = data.get("logs", {}).get("driver")
            if chunk:
                self.offset = chunk["offset"]

    @task(1)
    def datasets(self):
        self.get("/datasets/", "datasets")
