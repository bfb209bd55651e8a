"""Bench: how fresh the run page's live view is. A real TFoS run on the embedded stack, watched
the way static/js/run.js watches it: GET live.json (new metric points since the last id, each
shown log from its last byte offset), then a 1 s pause, until the run ends.

    .venv/bin/python bench/freshness.py [--epochs 20] [--executors 2]

- metric freshness: when a poll first returns a point − the point's wall_time (set in the executor
  when Keras ends that step);
- log freshness: when a poll first returns a line `SPARKDECK_STEP ... at=T` (one per epoch per
  executor) − T, its write time in the executor.
Same machine, same clock. The shipped defaults hold (reconcile every 2 s, metrics posted every
0.5 s); both executors' stderr are followed in every poll (the page follows one at a time).
"""

import argparse
import re
import statistics
import sys
import time
from pathlib import Path

import requests
from stack import EmbeddedStack

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_vs_plain import make_dataset  # noqa: E402

STEP_AT = re.compile(r"^SPARKDECK_STEP .* at=(\d+\.\d+)$", re.M)
POLL_PAUSE = 1.0  # static/js/run.js: setTimeout(poll, 1000) after each response


def pct(values, q):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def login(base: str) -> requests.Session:
    s = requests.Session()
    s.get(f"{base}/accounts/login/", timeout=10)
    r = s.post(
        f"{base}/accounts/login/",
        data={"username": "bench", "password": "bench-only", "csrfmiddlewaretoken": s.cookies["csrftoken"]},
        headers={"Referer": f"{base}/accounts/login/"},
        timeout=10,
        allow_redirects=False,
    )
    if r.status_code != 302:
        raise SystemExit(f"login failed: HTTP {r.status_code}")
    return s


def watch(session: requests.Session, url: str) -> dict:
    since, offsets, partial = 0, {}, {}
    metric_lag, log_lag, request_ms = [], [], []
    while True:
        params = [("since", str(since))]
        for key, off in offsets.items():
            params += [("log", key), (f"off:{key}", str(off))]
        t0 = time.time()
        data = session.get(url, params=params, timeout=30).json()
        seen = time.time()
        request_ms.append(1000 * (seen - t0))
        for p in data["points"]:
            since = max(since, p["id"])
            if p["wall_time"] > 0:
                metric_lag.append(seen - p["wall_time"])
        for key, chunk in data["logs"].items():
            offsets[key] = chunk["offset"]
            text = partial.get(key, "") + chunk["text"]
            complete, _, partial[key] = text.rpartition("\n")
            log_lag += [seen - float(t) for t in STEP_AT.findall(complete)]
        for ex in data["executors"]:
            offsets.setdefault(f"{ex}:stderr", 0)
        if data["terminal"] and not data["points"] and all(c["offset"] >= c["size"] for c in data["logs"].values()):
            return {"status": data["status"], "metric": metric_lag, "log": log_lag, "request_ms": request_ms}
        time.sleep(POLL_PAUSE)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--executors", type=int, default=2)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()

    with EmbeddedStack(keep=args.keep, reconcile_seconds=2.0) as stack:
        stack.wait_web()
        npz = stack.root / "digits.npz"
        make_dataset(npz, 0, 1)
        ds = stack.dataset("digits", npz)
        session = login(stack.web_url)
        run = stack.submit(ds, "cnn", {"epochs": args.epochs, "batch_size": 32}, executors=args.executors)
        got = watch(session, f"{stack.web_url}/runs/{run.pk}/live.json")

    print(f"run {run.pk}: {got['status']}, {args.epochs} epochs, {args.executors} executors, poll pause {POLL_PAUSE} s")
    for name, unit, values in (
        ("metric freshness (emit -> on page)", "s", got["metric"]),
        ("log freshness (line written -> on page)", "s", got["log"]),
        ("live.json request", "ms", got["request_ms"]),
    ):
        if not values:
            print(f"{name}: no samples")
            continue
        print(
            f"{name}: n={len(values)} p50={pct(values, 50):.2f} {unit} p95={pct(values, 95):.2f} {unit} "
            f"max={max(values):.2f} {unit} mean={statistics.mean(values):.2f} {unit}"
        )
    return 0 if got["status"] == "SUCCEEDED" and got["metric"] and got["log"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
