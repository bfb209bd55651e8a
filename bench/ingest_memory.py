"""Bench: upload + conversion of big datasets through the real web server and Celery worker, with
the peak memory of both, to show that memory stays flat (streaming) instead of growing with size.

For each file (a small one as the baseline, then the big one) it streams a multipart upload over
HTTP to gunicorn (the client never holds the file either), waits until the dataset is READY
(conversion runs as a Celery task), and samples the resident memory of every process of the web
server and of the Celery worker every 0.1 s.

    .venv/bin/python bench/ingest_memory.py [--csv-mb 1024] [--images 50000] [--small-factor 10]
"""

import argparse
import http.client
import os
import re
import sys
import threading
import time
import uuid
import zipfile
from io import BytesIO
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
from stack import EmbeddedStack


def write_csv(path: Path, megabytes: float, seed=0):
    """Pixel-like CSV (784 integer columns + label) of about `megabytes` MB, written block by block."""
    rng = np.random.default_rng(seed)
    rows = 2000
    x = rng.integers(0, 256, size=(rows, 784))
    y = np.arange(rows) % 10
    block = "\n".join(",".join(map(str, r)) + f",{lbl}" for r, lbl in zip(x.tolist(), y.tolist(), strict=True))
    block = (block + "\n").encode()
    header = (",".join(f"p{i}" for i in range(784)) + ",label\n").encode()
    target = int(megabytes * 2**20)
    with open(path, "wb") as f:
        f.write(header)
        written = len(header)
        while written < target:
            f.write(block)
            written += len(block)
    return path


def write_zip(path: Path, images: int, seed=0):
    """`images` 28×28 grayscale PNGs in 10 class folders (stored, not re-compressed)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(50, 28, 28), dtype=np.uint8)
    pngs = []
    for i in range(50):
        buf = BytesIO()
        Image.fromarray(base[i], mode="L").save(buf, format="PNG")
        pngs.append(buf.getvalue())
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for i in range(images):
            zf.writestr(f"digits/{i % 10}/img{i:06d}.png", pngs[i % 50])
    return path


def group_rss(pgid: int) -> int:
    """Sum of VmRSS (bytes) of all processes in a process group."""
    total = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid:  # pgrp
                continue
            with open(f"/proc/{pid}/status") as f:
                m = re.search(r"VmRSS:\s+(\d+) kB", f.read())
            total += int(m.group(1)) * 1024 if m else 0
        except (OSError, IndexError, ValueError):
            continue
    return total


class Sampler(threading.Thread):
    def __init__(self, groups: dict):
        super().__init__(daemon=True)
        self.groups = groups
        self.peak = {k: 0 for k in groups}
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            for k, g in self.groups.items():
                self.peak[k] = max(self.peak[k], group_rss(g))
            time.sleep(0.1)


def login(base_url):
    import requests

    s = requests.Session()
    s.get(f"{base_url}/accounts/login/")
    r = s.post(
        f"{base_url}/accounts/login/",
        data={"username": "bench", "password": "bench-only", "csrfmiddlewaretoken": s.cookies["csrftoken"]},
        allow_redirects=False,
    )
    assert r.status_code == 302, r.status_code
    s.get(f"{base_url}/datasets/upload/")
    return s


def stream_upload(base_url, session, name, path: Path, fields: dict):
    """multipart/form-data POST with the file streamed in 1 MiB chunks (known Content-Length)."""
    boundary = uuid.uuid4().hex
    head = b""
    for k, v in {"name": name, **fields, "csrfmiddlewaretoken": session.cookies["csrftoken"]}.items():
        head += f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
    head += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    u = urlparse(base_url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=3600)
    conn.putrequest("POST", "/datasets/upload/")
    conn.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
    conn.putheader("Content-Length", str(len(head) + path.stat().st_size + len(tail)))
    conn.putheader("Cookie", "; ".join(f"{k}={v}" for k, v in session.cookies.items()))
    conn.putheader("X-CSRFToken", session.cookies["csrftoken"])
    conn.putheader("X-Requested-With", "XMLHttpRequest")
    conn.putheader("Referer", f"{base_url}/datasets/upload/")
    conn.endheaders()
    conn.send(head)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            conn.send(chunk)
    conn.send(tail)
    resp = conn.getresponse()
    body = resp.read().decode(errors="replace")
    return resp.status, body


def measure(stack, session, groups, label, name, path, fields):
    from webapp.datasets.models import Dataset

    idle = {k: group_rss(g) for k, g in groups.items()}
    sampler = Sampler(groups)
    sampler.start()
    t0 = time.time()
    status, body = stream_upload(stack.web_url, session, name, path, fields)
    t_upload = time.time() - t0
    if status not in (200, 302):
        sampler.stop.set()
        raise SystemExit(f"{label}: upload answered {status}: {body[:500]}")
    ds = Dataset.objects.get(team=stack.team, name=name)
    while ds.status not in ("READY", "FAILED"):
        time.sleep(0.2)
        ds.refresh_from_db()
    total = time.time() - t0
    sampler.stop.set()
    sampler.join()
    if ds.status != "READY":
        raise SystemExit(f"{label}: conversion FAILED: {getattr(ds, 'status_reason', '')}")
    mb = path.stat().st_size / 2**20
    row = {
        "label": label,
        "MB": mb,
        "rows": ds.train_rows + ds.test_rows,
        "upload_s": t_upload,
        "convert_s": total - t_upload,
        "web_peak_growth_MB": (sampler.peak["web"] - idle["web"]) / 2**20,
        "worker_peak_growth_MB": (sampler.peak["worker"] - idle["worker"]) / 2**20,
        "web_peak_MB": sampler.peak["web"] / 2**20,
        "worker_peak_MB": sampler.peak["worker"] / 2**20,
    }
    print(
        f"  {label:<16} {mb:8.0f} MB {row['rows']:>8} rows  upload {t_upload:6.1f} s  convert {row['convert_s']:6.1f} s"
        f"  web peak {row['web_peak_MB']:6.0f} MB (+{row['web_peak_growth_MB']:.0f})"
        f"  worker peak {row['worker_peak_MB']:6.0f} MB (+{row['worker_peak_growth_MB']:.0f})",
        flush=True,
    )
    return row


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--csv-mb", type=float, default=1024)
    ap.add_argument("--images", type=int, default=50000)
    ap.add_argument("--small-factor", type=int, default=10, help="baseline file = big / factor")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    os.environ["SPARKDECK_MAX_UPLOAD_MB"] = str(int(args.csv_mb * 2 + 100))
    os.environ["SPARKDECK_MAX_VALUES"] = str(2_000_000_000)  # a 1 GB pixel CSV holds ~330 M values
    with EmbeddedStack(keep=args.keep) as stack:
        stack.wait_web()
        session = login(stack.web_url)
        groups = {"web": stack.procs[0].pid, "worker": stack.procs[1].pid}
        rows = []
        small_csv = write_csv(stack.root / "small.csv", args.csv_mb / args.small_factor)
        big_csv = write_csv(stack.root / "big.csv", args.csv_mb)
        rows.append(measure(stack, session, groups, "csv (baseline)", "csv-small", small_csv, {}))
        rows.append(measure(stack, session, groups, "csv (big)", "csv-big", big_csv, {}))
        small_zip = write_zip(stack.root / "small.zip", max(100, args.images // args.small_factor))
        big_zip = write_zip(stack.root / "big.zip", args.images)
        rows.append(measure(stack, session, groups, "zip (baseline)", "zip-small", small_zip, {}))
        rows.append(measure(stack, session, groups, "zip (big)", "zip-big", big_zip, {}))
        for kind in ("csv", "zip"):
            small, big = [r for r in rows if r["label"].startswith(kind)]
            size_ratio = big["MB"] / small["MB"]
            for proc in ("web", "worker"):
                growth = big[f"{proc}_peak_MB"] / max(1.0, small[f"{proc}_peak_MB"])
                print(f"RATIO {kind} {proc} peak memory big/baseline = {growth:.2f} (file size ratio {size_ratio:.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
