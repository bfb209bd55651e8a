"""Bench (issue 7): the run history pages at scale, on PostgreSQL, measured as the server answers them.

Seeds its own database (default ``postgres://postgres@127.0.0.1:5432/bench_history``: created,
migrated, and dropped at the end unless ``--keep``) with

- 100,000 runs over 20 teams (the biggest holds ``--big-share`` of them), ids in creation order over
  a year, statuses, templates, a handful of datasets per team, submitters, tags, notes, hyperparameters
  per template, and the run table's denormalized columns filled as ``Run.save`` / ``summary.summarize``
  would (epochs/batch_size/learning_rate from the hyperparameters; best_accuracy/final_loss from the
  run's own epoch-end points; test_accuracy/test_loss from its result; duration from its timestamps);
- 10,000,000 metric points: one run of 1,000,000, the rest spread over the runs that started
  (loss/accuracy per step per executor, epoch_loss/epoch_accuracy at each epoch end), loaded by COPY;
- a 10,000,000-row prediction file of one run, written by ``workers.jobs.inference.write_predictions``
  (which also writes its analysis: analysis.json + by_class.parquet), in a child process;
- the stored chart series (``metrics.warm_series``, as ``Run.transition`` does when a run ends) of the
  finished runs the bench opens.

Everything is drawn from one seeded generator: the same arguments give the same database.

Then it times the pages through Django's test client in this process, logged in as the owner of the
biggest team: wall time around ``client.get`` (URL routing, middleware, session, view, queries,
template), ``--warmup`` requests first (the first one's time is shown as "first"), then ``--repeat``
timed ones, with the number of SQL queries and their time. Cases: the run table (default, filtered,
sorted, later pages by cursor, searched, tag, a joined sort), the 1M-point run's page and its chart
data, the compare page of 10 runs and its data.json, and the prediction table of the 10M-row file
(unfiltered, deep page, by true class, by predicted class, errors only, confidence range) with the
process RSS before, after, and over ``--soak`` more requests. It prints a table of the figures against
the targets and EXPLAIN (ANALYZE, BUFFERS) of the run table's queries; exit status 1 if a target is
missed. Figures and findings: docs/bench-history.md.

    make bench-history                          # the full bench (~70 s seeding + ~2 min on 2 cores)
    .venv/bin/python bench/history.py --quick   # 1/10 of everything, under a minute
    .venv/bin/python bench/history.py --keep    # keep (and next time reuse) the seeded database
    .venv/bin/python bench/history.py --all-table-cases --only table   # every filter and sort column
    .venv/bin/python bench/history.py --runs 20000 --points 2000000 --pred-rows 1000000 --repeat 20
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import multiprocessing
import os
import re
import shutil
import statistics
import sys
import time
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode, urlsplit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/bench_history"
END = datetime(2026, 11, 1, tzinfo=UTC)  # runs are created in the year before this (fixed: deterministic)
PASSWORD = "bench-only"
# The compare page has no target of its own: shown against the run page's, as a reference.
TARGETS = {"table": 150.0, "run": 200.0, "compare": 200.0, "predictions": 200.0}
REFERENCE_ONLY = {"compare"}
META_TABLE = "bench_history_meta"

WORDS = "baseline augment dropout wide deep small tuned retry ablation warmup cosine mixup longer".split()
COMMON_TAGS = ["baseline", "sweep", "prod", "v2", "ablation", "augment", "lr-sweep", "debug", "paper", "repro"]
DATASETS = [  # name, shape, classes, train rows, test rows, accuracy the templates reach on it
    ("digits", [8, 8, 1], 10, 1437, 360, 0.975),
    ("mnist", [28, 28, 1], 10, 60000, 10000, 0.99),
    ("fashion", [28, 28, 1], 10, 60000, 10000, 0.91),
    ("cifar10", [32, 32, 3], 10, 50000, 10000, 0.78),
    ("flowers", [64, 64, 3], 5, 2936, 734, 0.86),
    ("gestures", [40, 6], 6, 7352, 2947, 0.92),
    ("parts-qa", [48, 48, 1], 4, 12000, 3000, 0.95),
    ("signs", [32, 32, 3], 43, 39209, 12630, 0.96),
]
TEMPLATES = ["cnn", "lstm", "featurizer", "imported"]
TEMPLATE_P = [0.45, 0.25, 0.2, 0.1]
TEMPLATE_SKILL = {"cnn": 0.0, "lstm": -0.04, "featurizer": 0.01, "imported": -0.01}


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--db", default=os.environ.get("BENCH_HISTORY_DATABASE_URL", DEFAULT_DB), help="bench database")
    ap.add_argument("--runs", type=int, help="runs (default 100,000; --quick 10,000)")
    ap.add_argument("--teams", type=int, default=20)
    ap.add_argument("--big-share", type=float, default=0.5, help="the biggest team's share of the runs")
    ap.add_argument("--points", type=int, help="metric points (default 10,000,000; --quick 1,000,000)")
    ap.add_argument("--big-run-points", type=int, help="points of the one big run (default points / 10)")
    ap.add_argument("--pred-rows", type=int, help="rows of the prediction file (default 10,000,000; --quick 1M)")
    ap.add_argument("--quick", action="store_true", help="1/10 of the default sizes")
    ap.add_argument("--keep", action="store_true", help="reuse a database seeded with the same sizes; keep it")
    ap.add_argument("--repeat", type=int, default=50, help="timed requests per case")
    ap.add_argument("--warmup", type=int, default=3, help="untimed requests per case first")
    ap.add_argument("--soak", type=int, default=1000, help="prediction requests after the cases (RSS samples)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--all-table-cases", action="store_true", help="also every other filter and sort column")
    ap.add_argument("--only", default="", help="comma-separated groups: table,run,compare,predictions")
    ap.add_argument("--var-dir", default=str(REPO / "var" / "bench" / "history"), help="artifact root's parent")
    args = ap.parse_args(argv)
    scale = 10 if args.quick else 1
    args.runs = args.runs or 100_000 // scale
    args.points = args.points if args.points is not None else 10_000_000 // scale
    args.big_run_points = args.big_run_points if args.big_run_points is not None else args.points // 10
    args.pred_rows = args.pred_rows if args.pred_rows is not None else 10_000_000 // scale
    args.only = {g for g in args.only.split(",") if g} or set(TARGETS)
    return args


def sizes(args) -> dict:
    keys = ("runs", "teams", "big_share", "points", "big_run_points", "pred_rows", "seed")
    return {k: getattr(args, k) for k in keys} | {"format": 2}


# ---------------------------------------------------------------- the database itself


def _admin_conn(url: str):
    import psycopg2

    parts = urlsplit(url)
    conn = psycopg2.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 5432,
        user=parts.username or "postgres",
        password=parts.password,
        dbname="postgres",
    )
    conn.autocommit = True
    return conn, parts.path.lstrip("/")


def prepare_database(args, fresh=False) -> bool:
    """Create the bench database; True if an already seeded one (same sizes, --keep) is reused."""
    conn, name = _admin_conn(args.db)
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name) or name in ("postgres", "template0", "template1"):
        raise SystemExit(f"refusing database name {name!r}: give the bench a scratch database of its own")
    with conn.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        exists = cur.fetchone() is not None
        if exists and args.keep and not fresh and _seeded_sizes(args.db) == sizes(args):
            conn.close()
            return True
        if exists:
            print(f"dropping the existing database {name}")
            cur.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return False


def _seeded_sizes(url: str):
    import psycopg2

    try:
        with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
            cur.execute(f"SELECT sizes FROM {META_TABLE}")
            row = cur.fetchone()
            return json.loads(row[0]) if row else None
    except psycopg2.Error:
        return None


def _seeded_files(args) -> bool:
    """Whether the var dir still holds the kept database's prediction file."""
    import psycopg2

    try:
        with closing(psycopg2.connect(args.db)) as conn, conn.cursor() as cur:
            cur.execute(f"SELECT meta FROM {META_TABLE}")
            pred = json.loads(cur.fetchone()[0])["pred_run"]
    except (psycopg2.Error, TypeError, KeyError, ValueError):
        return False
    return (Path(args.var_dir) / "artifacts" / "runs" / str(pred) / "predictions" / "analysis.json").exists()


def drop_database(args) -> None:
    from django.db import connections

    connections.close_all()
    conn, name = _admin_conn(args.db)
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


# ---------------------------------------------------------------- the plan: every run, drawn at once


class Plan:
    """Every run's attributes as numpy arrays (index i = run id i + 1), and its metric layout."""

    def __init__(self, args, datasets_per_team, users_per_team):
        import numpy as np

        rng = np.random.default_rng([args.seed, 1])
        self.n = n = args.runs
        self.ids = np.arange(1, n + 1, dtype=np.int64)
        # Creation times over a year, busier towards the end; ids follow creation order.
        frac = np.sort(np.sqrt(rng.random(n)))
        self.created = (END - timedelta(days=365)).timestamp() + frac * 365 * 86400
        w = 1.0 / np.arange(1, args.teams) ** 1.1
        p = np.concatenate([[args.big_share], (1 - args.big_share) * w / w.sum()]) if args.teams > 1 else np.ones(1)
        self.team = rng.choice(args.teams, n, p=p)
        self.template = rng.choice(len(TEMPLATES), n, p=TEMPLATE_P)
        # Dataset: a team mostly uses its first datasets.
        nds = np.array([len(datasets_per_team[t]) for t in range(args.teams)])
        self.ds_slot = np.minimum((rng.pareto(1.2, n)).astype(np.int64), nds[self.team] - 1)
        nus = np.array([len(users_per_team[t]) for t in range(args.teams)])
        self.user_slot = np.minimum((rng.pareto(1.0, n)).astype(np.int64), nus[self.team] - 1)
        self.executors = rng.choice([1, 2, 4, 8], n, p=[0.35, 0.45, 0.15, 0.05])
        self.cores = rng.choice([1, 2, 4], n, p=[0.6, 0.3, 0.1])
        self.memory = rng.choice([2048, 4096, 8192], n, p=[0.5, 0.35, 0.15])
        self.gpus = np.where(rng.random(n) < 0.1, 1, 0)
        self.cluster = rng.choice(3, n, p=[0.6, 0.3, 0.1])
        self.epochs = rng.choice([1, 2, 3, 5, 10, 20, 50], n, p=[0.15, 0.15, 0.35, 0.2, 0.1, 0.04, 0.01])
        self.batch = rng.choice([16, 32, 64, 128, 256], n, p=[0.1, 0.35, 0.3, 0.18, 0.07])
        self.lr = rng.choice([1e-4, 3e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2], n, p=[0.08, 0.12, 0.15, 0.3, 0.15, 0.12, 0.08])
        self.optimizer = rng.choice(3, n, p=[0.7, 0.2, 0.1])
        self.dropout = rng.choice([0.0, 0.2, 0.3, 0.4, 0.5], n)
        self.units = rng.choice([64, 128, 256, 512, 1024], n)
        # Status: the newest runs are still active; the rest ended.
        u = rng.random(n)
        status = np.where(u < 0.78, 0, np.where(u < 0.93, 1, 2))  # SUCCEEDED, FAILED, CANCELLED
        recent = np.arange(n) >= n - max(3, n // 400)
        status = np.where(recent, rng.choice([3, 4, 5], n, p=[0.5, 0.2, 0.3]), status)  # RUNNING, SUBMITTED, QUEUED
        self.status = status
        self.never_started = ((status == 1) & (rng.random(n) < 0.2)) | ((status == 2) & (rng.random(n) < 0.3))
        self.never_started |= status >= 4
        self.wait = rng.exponential(25, n) + np.where(rng.random(n) < 0.05, rng.exponential(1800, n), 0)
        self.boot = rng.uniform(4, 20, n)
        self.sec_per_step = rng.uniform(0.01, 0.4, n)
        progress = np.where(status == 0, 1.0, rng.random(n))
        self.epochs_done = np.where(self.never_started, 0, np.floor(progress * self.epochs)).astype(np.int64)
        self.epochs_done = np.where(status == 0, self.epochs, self.epochs_done)
        # What the run reaches: the dataset's accuracy, the template's, a learning-rate sweet spot, luck.
        self.skill = (
            np.array([TEMPLATE_SKILL[t] for t in TEMPLATES])[self.template]
            - 0.03 * np.abs(np.log10(self.lr) + 3)
            + rng.normal(0, 0.03, n)
            - 0.08 / np.sqrt(self.epochs)
        )
        self.noise = rng.normal(0, 1, (n, 4))
        self.tag_draw = rng.random((n, 6))
        self.rare_tag = rng.integers(0, 300, n)
        self.word = rng.integers(0, len(WORDS), n)
        self.has_notes = rng.random(n) < 0.1
        self.note_words = rng.integers(0, len(WORDS), (n, 12))
        self.starred = rng.random(n) < 0.02
        self.archived = (rng.random(n) < 0.08) & (status <= 2)
        self.points_weight = rng.lognormal(0, 1, n)
        self.rng = rng

    def layout(self, total_points: int, big_index: int, big_points: int):
        """Points per run: epoch-end points (2 names x executors x epochs done) plus step points, at
        least one per (executor, name) series, the rest shared by weight; ``total_points`` exactly."""
        import numpy as np

        # A featurizer run with a LogisticRegression head trains in MLlib: it posts no metrics.
        self.logreg = (self.template == TEMPLATES.index("featurizer")) & (self.tag_draw[:, 5] >= 0.4)
        started = ~self.never_started & ~self.logreg
        x = self.executors.astype(np.int64)
        # A run's step series: 2 per executor (loss, accuracy); epoch points: 2 per executor per epoch.
        epoch_pts = np.where(started, 2 * x * self.epochs_done, 0)
        step_min = np.where(started, 2 * x, 0)
        epoch_pts[big_index] = 2 * x[big_index] * self.epochs_done[big_index]
        others = np.ones(self.n, bool)
        others[big_index] = False
        budget = total_points - big_points - int(epoch_pts[others].sum()) - int(step_min[others].sum())
        if budget < 0:  # too few points for the plan's epochs: keep the step minimum only
            epoch_pts[:] = 0
            budget = total_points - big_points - int(step_min[others].sum())
        w = np.where(started & others, self.points_weight * (self.epochs_done + 0.5) * x, 0.0)
        share = np.floor(w / w.sum() * budget).astype(np.int64)
        left = budget - int(share.sum())
        order = np.argsort(-w, kind="stable")[:left]
        share[order] += 1
        steps = step_min + share
        steps[big_index] = big_points - epoch_pts[big_index]
        self.step_pts = steps.astype(np.int64)
        self.epoch_pts = epoch_pts.astype(np.int64)
        self.points = self.step_pts + self.epoch_pts
        assert int(self.points.sum()) == total_points, (int(self.points.sum()), total_points)
        # Batches per epoch between logged points (every 5 steps) so a series spans its epochs.
        per_series = -(-self.step_pts // np.maximum(1, 2 * x))
        self.ppe = np.maximum(1, -(-per_series // np.maximum(1, self.epochs_done)))
        self.final_acc = np.clip(self.base_acc + self.skill, 0.12, 0.999)
        self.final_loss_level = -np.log(self.final_acc) * 1.1 + 0.01


def _curve(xfrac, final_acc, final_loss, k):
    import numpy as np

    decay = np.exp(-4.0 * xfrac)
    acc = final_acc - (final_acc - 1.0 / k) * decay
    loss = final_loss + (np.log(k) - final_loss) * decay
    return acc, loss


def epoch_rows(plan, runs):
    """The epoch-end points of ``runs`` (indexes): run, executor, epoch, name (2: epoch_loss,
    3: epoch_accuracy), step, value."""
    import numpy as np

    runs = runs[plan.epoch_pts[runs] > 0]
    x = plan.executors[runs]
    e = plan.epochs_done[runs]
    cnt = x * e  # (executor, epoch) pairs
    r = np.repeat(runs, cnt)
    k = np.arange(int(cnt.sum())) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    ex, ep = k // np.repeat(e, cnt), k % np.repeat(e, cnt)
    xfrac = (ep + 0.5) / plan.epochs[r]
    acc, loss = _curve(xfrac, plan.final_acc[r] + 0.01, plan.final_loss_level[r] * 0.9, plan.classes[r])
    wob = 0.004 * np.sin(r * 7.0 + ex * 3.1 + ep * 1.7)  # deterministic per (run, executor, epoch)
    acc = np.clip(acc + wob, 0, 1)
    loss = np.maximum(0.001, loss * (1 + 2 * wob))
    step = 5 * plan.ppe[r] * (ep + 1)
    both = np.concatenate
    return (
        both([r, r]),
        both([ex, ex]),
        both([ep, ep]),
        both([np.full(len(r), 2), np.full(len(r), 3)]),
        both([step, step]),
        both([loss, acc]),
    )


def summary_columns(plan):
    """best_accuracy (highest epoch_accuracy) and final_loss (mean epoch_loss of the last epoch) per
    run, from the epoch points exactly as webapp/runs/summary.metric_columns computes them."""
    import numpy as np

    r, _ex, ep, name, _step, val = epoch_rows(plan, np.arange(plan.n))
    best = np.full(plan.n, np.nan)
    acc = name == 3
    np.fmax.at(best, r[acc], val[acc])
    last = (name == 2) & (ep == plan.epochs_done[r] - 1)
    sums = np.bincount(r[last], val[last], plan.n)
    cnts = np.bincount(r[last], None, plan.n)
    final = np.where(cnts > 0, sums / np.maximum(cnts, 1), np.nan)
    return best, final


def metric_chunks(plan, rows_per_chunk=1_000_000):
    """pyarrow tables of metric points (run_id, name, executor, step, epoch, value, wall_time), runs
    in id order, each run's points in arrival order (step, executor, name)."""
    import numpy as np
    import pyarrow as pa

    names = pa.array(["loss", "accuracy", "epoch_loss", "epoch_accuracy"])
    executors = pa.array([str(i) for i in range(64)])
    bounds = np.searchsorted(np.cumsum(plan.points), np.arange(rows_per_chunk, plan.points.sum(), rows_per_chunk))
    edges = np.unique(np.concatenate([[0], bounds + 1, [plan.n]]))
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        runs = np.arange(lo, hi)
        runs = runs[plan.points[runs] > 0]
        if not len(runs):
            continue
        # Step points: series (run, executor, name) with n_s points each.
        x = plan.executors[runs]
        ns = 2 * x
        sr = np.repeat(runs, ns)
        si = np.arange(int(ns.sum())) - np.repeat(np.cumsum(ns) - ns, ns)
        total = plan.step_pts[sr]
        per = total // (2 * plan.executors[sr]) + (si < total % (2 * plan.executors[sr]))
        r = np.repeat(sr, per)
        j = np.arange(int(per.sum())) - np.repeat(np.cumsum(per) - per, per)
        s_ex, s_name = np.repeat(si // 2, per), np.repeat(si % 2, per)
        ppe = plan.ppe[r]
        e_done = np.maximum(1, plan.epochs_done[r])
        ep = np.minimum(j // ppe, e_done - 1)
        step = 5 * (j + 1)
        xfrac = step / (5.0 * ppe * plan.epochs[r])
        acc, loss = _curve(xfrac, plan.final_acc[r], plan.final_loss_level[r], plan.classes[r])
        jitter = plan.rng.normal(0, 1, len(r))
        val = np.where(s_name == 1, np.clip(acc + 0.03 * jitter, 0, 1), np.maximum(0.001, loss * (1 + 0.12 * jitter)))
        er, eex, eep, ename, estep, evals = epoch_rows(plan, runs)
        run = np.concatenate([r, er])
        exe = np.concatenate([s_ex, eex])
        epoch = np.concatenate([ep, eep])
        name = np.concatenate([s_name, ename])
        steps = np.concatenate([step, estep])
        value = np.concatenate([val, evals])
        order = np.lexsort((name, exe, steps, run))
        run, exe, epoch, name, steps, value = (a[order] for a in (run, exe, epoch, name, steps, value))
        wall = plan.start_ts[run] + steps * plan.sec_per_step[run]
        yield pa.table(
            {
                "run_id": pa.array(plan.ids[run]),
                "name": pa.DictionaryArray.from_arrays(pa.array(name.astype(np.int32)), names).cast(pa.string()),
                "executor": pa.DictionaryArray.from_arrays(pa.array(exe.astype(np.int32)), executors).cast(pa.string()),
                "step": pa.array(steps.astype(np.int64)),
                "epoch": pa.array(epoch.astype(np.int64)),
                "value": pa.array(np.round(value, 6)),
                "wall_time": pa.array(np.round(wall, 3)),
            }
        )


# ---------------------------------------------------------------- predictions (a child process)


def write_prediction_file(out_dir: str, rows: int, seed: int, k: int) -> None:
    """10M (row_id, label, prediction, confidence) rows through the job's own writer, which also
    analyses them. Runs in a child process, so the bench process's memory stays what a web worker's is."""
    import numpy as np

    from workers.jobs.inference import write_predictions

    rng = np.random.default_rng([seed, 2])
    label = rng.integers(0, k, rows)
    per_class_acc = 0.84 + 0.14 * rng.random(k)
    correct = rng.random(rows) < per_class_acc[label]
    # Mistakes mostly go to a "neighbouring" class (a realistic, lumpy confusion matrix).
    off = rng.choice(np.arange(1, k), rows, p=(w := 1.0 / np.arange(1, k) ** 1.5) / w.sum())
    pred = np.where(correct, label, (label + off) % k)
    conf = np.where(correct, rng.beta(9, 1.3, rows), 0.15 + 0.8 * rng.beta(2.2, 2.5, rows)).astype(np.float32)
    results = list(zip(range(rows), label.tolist(), pred.tolist(), conf.tolist(), strict=True))
    del label, correct, off, pred, conf
    seconds = write_predictions(results, out_dir, k)
    print(f"  predictions: {rows:,} rows written, analysis {seconds} s", flush=True)


# ---------------------------------------------------------------- seeding


def _csv_value(value):
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    return str(value)


def copy_rows(cursor, table: str, columns: list[str], rows) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    for row in rows:
        w.writerow([_csv_value(v) for v in row])
    buf.seek(0)
    cols = ", ".join(f'"{c}"' for c in columns)
    cursor.copy_expert(f"COPY \"{table}\" ({cols}) FROM STDIN WITH (FORMAT csv, NULL '\\N')", buf)


def seed(args, timings: dict) -> dict:
    import numpy as np
    import pyarrow.csv as pacsv
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.db import connection, transaction

    from webapp.accounts.models import Membership, Team
    from webapp.catalog.registry import TEMPLATES as REGISTRY
    from webapp.clusters.models import Cluster
    from webapp.datasets.models import Dataset
    from webapp.runs.models import MetricPoint, Run, RunTag, hyperparameter_columns

    t0 = time.perf_counter()
    rng = np.random.default_rng([args.seed, 0])
    User = get_user_model()
    hashed = make_password(PASSWORD)  # hashed once: PBKDF2 per user would take seconds
    pool = [User(username=f"user{i:03d}", password=hashed, email=f"user{i:03d}@example.com") for i in range(160)]
    bench_user = User(username="bench", password=hashed, email="bench@example.com")
    User.objects.bulk_create([*pool, bench_user])
    pool = list(User.objects.filter(username__startswith="user").order_by("username"))
    bench_user = User.objects.get(username="bench")
    teams = Team.objects.bulk_create([Team(name=f"Team {t:02d}", slug=f"team-{t:02d}") for t in range(args.teams)])
    teams = list(Team.objects.order_by("slug"))
    users_per_team, memberships = [], []
    for t, team in enumerate(teams):
        size = 15 if t == 0 else int(rng.integers(3, 12))
        members = [pool[int(i)] for i in rng.choice(len(pool), size, replace=False)]
        if t == 0:
            members = [bench_user, *members]
        users_per_team.append(members)
        for i, u in enumerate(members):
            role = "owner" if i == 0 else ("viewer" if i == len(members) - 1 else "member")
            memberships.append(Membership(team=team, user=u, role=role))
    for t in (1, 2):  # the bench user also belongs to two other teams (for_user joins all of them)
        if t < len(teams):
            memberships.append(Membership(team=teams[t], user=bench_user, role="member"))
    Membership.objects.bulk_create(memberships)
    clusters = [
        Cluster.objects.create(name=n, master_url=m, rest_url=r)
        for n, m, r in (
            ("spark-a", "spark://10.0.0.1:7077", "http://10.0.0.1:8080"),
            ("spark-gpu", "spark://10.0.0.2:7077", "http://10.0.0.2:8080"),
            ("yarn-prod", "", "http://rm.example.com:8088"),
        )
    ]
    datasets_per_team, ds_objs = [], []
    for t, team in enumerate(teams):
        count = len(DATASETS) if t == 0 else int(rng.integers(3, 7))
        picks = list(range(count)) if t == 0 else sorted(rng.choice(len(DATASETS), count, replace=False).tolist())
        mine = []
        for slot, d in enumerate(picks):
            name, shape, k, train, test, _acc = DATASETS[d]
            ds = Dataset(
                team=team,
                name=name if slot else f"{name}-v2",
                source_format="npz",
                original_name=f"{name}.npz",
                status="READY",
                layout="sequence" if len(shape) == 2 else "image",
                shape=shape,
                num_classes=k,
                class_names=[str(c) for c in range(k)],
                class_counts=[train // k] * k,
                train_rows=train,
                test_rows=test,
                created_by=users_per_team[t][0],
            )
            mine.append((ds, d))
            ds_objs.append(ds)
        datasets_per_team.append(mine)
    # The prediction run's dataset: 10 classes, as many test rows as the prediction file.
    pred_ds = Dataset(
        team=teams[0],
        name="street-photos",
        source_format="zip",
        original_name="street.zip",
        status="READY",
        shape=[32, 32, 3],
        num_classes=10,
        class_names=["car", "bus", "bike", "person", "dog", "cat", "tree", "sign", "light", "truck"],
        class_counts=[args.pred_rows * 4 // 10] * 10,
        train_rows=args.pred_rows * 4,
        test_rows=args.pred_rows,
        created_by=bench_user,
    )
    Dataset.objects.bulk_create([*ds_objs, pred_ds])
    timings["seed: users, teams, datasets"] = time.perf_counter() - t0

    # ---- runs
    t0 = time.perf_counter()
    plan = Plan(args, datasets_per_team, users_per_team)
    n = plan.n
    team0 = np.nonzero(plan.team == 0)[0]
    ok0 = team0[(plan.status[team0] == 0)]
    big = int(ok0[-2])  # a recent finished run of the biggest team
    pred = int(ok0[-3])
    # The big run: 4 executors, 20 epochs, a CNN on mnist (slot 1 of team 0).
    plan.executors[big], plan.epochs[big], plan.epochs_done[big], plan.template[big] = 4, 20, 20, 0
    plan.template[pred] = 0
    plan.ds_slot[big] = 1
    plan.user_slot[pred] = plan.user_slot[big] = 0
    plan.archived[[big, pred]] = False
    ds_of = np.empty(n, np.int64)
    ds_kind = np.empty(n, np.int64)
    for i in range(n):
        ds, d = datasets_per_team[plan.team[i]][plan.ds_slot[i]]
        ds_of[i], ds_kind[i] = ds.pk, d
    ds_of[pred] = pred_ds.pk
    plan.classes = np.array([DATASETS[d][2] for d in ds_kind], np.float64)
    plan.classes[pred] = 10
    plan.base_acc = np.array([DATASETS[d][5] for d in ds_kind])
    # Timestamps (epoch seconds): created → submitted → started → finished.
    submitted = plan.created + plan.wait
    started = submitted + plan.boot
    plan.layout(args.points, big, args.big_run_points)
    steps_total = 5 * plan.ppe * plan.epochs
    train_s = steps_total * plan.sec_per_step + 2.0 * plan.epochs
    finished = started + np.where(plan.status == 0, train_s, np.minimum(train_s, plan.rng.exponential(300, n)))
    plan.start_ts = started
    best, final = summary_columns(plan)
    timings["seed: plan (numpy)"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    status_names = ["SUCCEEDED", "FAILED", "CANCELLED", "RUNNING", "SUBMITTED", "QUEUED"]
    fields = [f for f in Run._meta.concrete_fields]
    columns = [f.column for f in fields]
    tag_rows = []
    run_rows = []
    registry_defaults = {key: {p.name: p.default for p in t.params} for key, t in REGISTRY.items()}
    optimizers = ["adam", "sgd", "rmsprop"]
    bases = ["app:MobileNetV2", "app:ResNet50", "file:1", "app:InceptionV3"]
    for i in range(n):
        st = int(plan.status[i])
        status = status_names[st]
        template = TEMPLATES[plan.template[i]]
        hp = dict(registry_defaults[template])
        hp.update(epochs=int(plan.epochs[i]), batch_size=int(plan.batch[i]), learning_rate=float(plan.lr[i]))
        if "optimizer" in hp:
            hp["optimizer"] = optimizers[plan.optimizer[i]]
        if "dropout" in hp:
            hp["dropout"] = float(plan.dropout[i])
        for key in ("dense_units", "hidden_units"):
            if key in hp and hp[key]:
                hp[key] = int(plan.units[i])
        if template == "featurizer":
            hp["base"] = bases[i % len(bases)]
            hp["head"] = "logreg" if plan.logreg[i] else "dense"
        if template == "imported":
            hp["model"] = f"file:{1 + i % 5}"
        never = bool(plan.never_started[i])
        created = datetime.fromtimestamp(plan.created[i], UTC)
        sub = None if never and st != 4 else datetime.fromtimestamp(submitted[i], UTC)
        if st == 5:
            sub = None
        start = None if never or st == 4 else datetime.fromtimestamp(started[i], UTC)
        end = datetime.fromtimestamp(finished[i], UTC) if st <= 2 else None
        if end is not None and start is None:
            end = (sub or created) + timedelta(seconds=float(plan.boot[i]))
        duration = None
        if end is not None and (start or sub):
            duration = max(0.0, (end - (start or sub)).total_seconds())
        done = st == 0
        k = int(plan.classes[i])
        acc = float(round(min(0.9995, max(1.0 / k, plan.final_acc[i] + 0.01 * plan.noise[i, 0])), 4))
        test_loss = float(round(max(0.001, -math.log(acc) * (1.2 + 0.1 * plan.noise[i, 1])), 4))
        test_rows = DATASETS[ds_kind[i]][4]
        result = {}
        if done:
            result = {
                "test_accuracy": acc,
                "test_loss": test_loss,
                "test_rows": test_rows,
                "train_seconds": round(float(train_s[i]), 1),
                "input_mode": "tensorflow",
                "analysis_seconds": 0.02,
            }
        tags = set()
        draw = plan.tag_draw[i]
        for slot, tag in enumerate(COMMON_TAGS[:5]):
            if draw[slot] < (0.12, 0.1, 0.05, 0.08, 0.04)[slot]:
                tags.add(tag)
        if draw[5] < 0.15:
            tags.add(COMMON_TAGS[5 + int(draw[5] * 33) % 5])
        if draw[0] > 0.97:
            tags.add(f"exp-{int(plan.rare_tag[i]):03d}")
        tags = sorted(tags)
        ds_name = DATASETS[ds_kind[i]][0] if i != pred else "street-photos"
        name = f"{template} {ds_name} {WORDS[plan.word[i]]} {i + 1}"
        notes = " ".join(WORDS[w] for w in plan.note_words[i][: 3 + i % 10]) if plan.has_notes[i] else ""
        user = users_per_team[plan.team[i]][plan.user_slot[i]]
        values = {
            "id": i + 1,
            "team": teams[plan.team[i]].pk,
            "created_by": user.pk,
            "name": name,
            "dataset": int(ds_of[i]),
            "template": template,
            "hyperparameters": hp,
            "input_mode": "tensorflow",
            "cluster": clusters[plan.cluster[i]].pk,
            "num_executors": int(plan.executors[i]),
            "executor_cores": int(plan.cores[i]),
            "executor_memory_mb": int(plan.memory[i]),
            "gpus_per_executor": int(plan.gpus[i]),
            "status": status,
            "status_reason": "" if st != 1 else "executor 1 lost: OutOfMemoryError" if start else "cluster unreachable",
            "queue_reason": "waiting for capacity: 4 cores free, 8 needed" if st == 5 else "",
            "created_at": created,
            "submitted_at": sub,
            "started_at": start,
            "finished_at": end,
            "spark_app_id": f"app-{created:%Y%m%d%H%M%S}-{i % 10000:04d}" if sub else "",
            "spark_ui_url": "",
            "backend_handle": {"driver_pid": 10000 + i % 50000} if sub else {},
            "ingest_token": f"bench-token-{i + 1}",
            "test_accuracy": acc if done else None,
            "test_rows": test_rows if done else None,
            "result": result,
            "test_loss": test_loss if done else None,
            "best_accuracy": None if math.isnan(best[i]) else round(float(best[i]), 6),
            "final_loss": None if math.isnan(final[i]) else round(float(final[i]), 6),
            "duration_s": duration,
            "tags": " ".join(tags),
            "notes": notes,
            "starred": bool(plan.starred[i]),
            "archived": bool(plan.archived[i]),
        }
        values.update({k2: v for k2, v in hyperparameter_columns(hp).items()})  # as Run.save does
        row = []
        for f in fields:
            row.append(values[f.name] if f.name in values else f.get_default())
        run_rows.append(row)
        tag_rows += [(i + 1, tag) for tag in tags]
    # The two runs the bench opens, named so a reader of the figures can find them.
    name_col = columns.index("name")
    run_rows[big][name_col] = f"cnn mnist long run 1M points {big + 1}"
    run_rows[pred][name_col] = f"cnn street-photos 10M predictions {pred + 1}"
    with transaction.atomic(), connection.cursor() as cur:
        copy_rows(cur, Run._meta.db_table, columns, run_rows)
        copy_rows(cur, RunTag._meta.db_table, ["run_id", "tag"], tag_rows)
        cur.execute(f"SELECT setval(pg_get_serial_sequence('{Run._meta.db_table}', 'id'), %s)", [n])
    timings["seed: runs + tags (COPY)"] = time.perf_counter() - t0
    del run_rows, tag_rows

    # ---- the prediction file, in a child process while the metric points load
    pred_dir = Path(args.var_dir) / "artifacts" / "runs" / str(pred + 1) / "predictions"
    pred_dir.mkdir(parents=True, exist_ok=True)
    t_pred = time.perf_counter()
    child = multiprocessing.get_context("spawn").Process(
        target=write_prediction_file, args=(str(pred_dir), args.pred_rows, args.seed, 10)
    )
    child.start()

    # ---- metric points
    t0 = time.perf_counter()
    table = MetricPoint._meta.db_table
    cols = "run_id, name, executor, step, epoch, value, wall_time"
    loaded = 0
    with connection.cursor() as cur:
        try:  # skip the per-row foreign key triggers (superuser only); the ids are known to exist
            cur.execute("SET session_replication_role = replica")
            replica = True
        except Exception:  # noqa: BLE001 - not a superuser: the triggers check every row, slower
            replica = False
        for chunk in metric_chunks(plan):
            buf = io.BytesIO()
            pacsv.write_csv(chunk, buf, pacsv.WriteOptions(include_header=False, quoting_style="needed"))
            buf.seek(0)
            cur.copy_expert(f"COPY {table} ({cols}) FROM STDIN WITH (FORMAT csv)", buf)
            loaded += chunk.num_rows
            print(f"  metric points: {loaded:,}", end="\r", flush=True)
        if replica:
            cur.execute("SET session_replication_role = origin")
    print()
    assert loaded == args.points, (loaded, args.points)
    timings["seed: metric points (COPY)"] = time.perf_counter() - t0

    # VACUUM: what autovacuum does to a table at rest (statistics, and the visibility map that lets
    # the run table's index-only scans skip the heap); the big table while the child still works.
    t0 = time.perf_counter()
    with connection.cursor() as cur:
        cur.execute(f"VACUUM (ANALYZE) {table}")
    child.join()
    if child.exitcode != 0:
        raise SystemExit(f"writing the prediction file failed (exit {child.exitcode})")
    timings["seed: 10M predictions + analysis (child, overlapped)"] = time.perf_counter() - t_pred
    an = json.loads((pred_dir / "analysis.json").read_text())
    result = {
        "test_accuracy": round(an["accuracy"], 6),
        "test_rows": an["rows"],
        "train_seconds": 5400.0,
        "input_mode": "tensorflow",
    }
    Run.objects.filter(pk=pred + 1).update(
        test_accuracy=result["test_accuracy"], test_rows=an["rows"], result={**result, "test_loss": 0.31}
    )
    with connection.cursor() as cur:
        for t in (Run._meta.db_table, RunTag._meta.db_table, Dataset._meta.db_table, "auth_user"):
            cur.execute(f"VACUUM (ANALYZE) {t}")
    timings["seed: VACUUM ANALYZE (+ waiting for the child)"] = time.perf_counter() - t0

    # ---- which runs the bench opens
    chosen = team0[plan.status[team0] == 0]
    by_points = chosen[np.argsort(-plan.points[chosen], kind="stable")]
    compare = [big + 1] + [int(r) + 1 for r in by_points if r not in (big, pred)][:9]
    meta = {
        "team": teams[0].pk,
        "team_runs": int(len(team0)),
        "big_run": big + 1,
        "big_run_points": int(plan.points[big]),
        "pred_run": pred + 1,
        "compare": compare,
        "compare_points": [int(plan.points[r - 1]) for r in compare],
        "dataset": int(datasets_per_team[0][0][0].pk),
        "submitter": users_per_team[0][1].username,
    }
    with connection.cursor() as cur:
        cur.execute(f"CREATE TABLE {META_TABLE} (sizes text, meta text)")
        cur.execute(f"INSERT INTO {META_TABLE} VALUES (%s, %s)", [json.dumps(sizes(args)), json.dumps(meta)])
    return meta


def check_summaries(sample: int = 200, seed: int = 0) -> str:
    """Recompute the denormalized columns of ``sample`` runs with webapp/runs/summary.py and compare
    them with what the seed stored (they must agree: the table sorts and filters on them)."""
    import random

    from webapp.runs.models import Run, hyperparameter_columns
    from webapp.runs.summary import duration_seconds, metric_columns

    ids = sorted(random.Random(seed).sample(range(1, Run.objects.count() + 1), sample))
    bad = []
    for run in Run.objects.filter(pk__in=ids):
        want = {
            **metric_columns(run.pk),
            "duration_s": duration_seconds(run),
            **hyperparameter_columns(run.hyperparameters),
        }
        for key, value in want.items():
            have = getattr(run, key)
            if (value is None) != (have is None) or (
                value is not None and abs(value - have) > 1e-5 * max(1, abs(value))
            ):
                bad.append(f"run {run.pk} {key}: stored {have}, summary {value}")
    return f"{sample - len({b.split()[1] for b in bad})}/{sample} runs agree" + (
        "; " + "; ".join(bad[:5]) if bad else ""
    )


def warm(meta, timings) -> None:
    """The opened runs' stored chart data as right after they ended: whatever an earlier bench stored
    removed, then what Run.transition stores (``metrics.warm_series``, if this version has it). So a
    case's "first" request is a real first view, also with --keep."""
    from django.core.cache import cache

    from webapp.runs import metrics
    from webapp.runs.models import Run

    cache.clear()
    runs = [Run.objects.get(pk=pk) for pk in dict.fromkeys([meta["big_run"], meta["pred_run"], *meta["compare"]])]
    for run in runs:
        run.run_dir.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(run.run_dir / getattr(metrics, "SERIES_DIR", "series"), ignore_errors=True)
    if not hasattr(metrics, "warm_series"):
        print("metrics.warm_series: not in this version (series are computed on first view)")
        return
    for run in runs:
        t0 = time.perf_counter()
        metrics.warm_series(run)
        seconds = time.perf_counter() - t0
        if run.pk == meta["big_run"]:
            timings[f"warm_series of the {meta['big_run_points']:,}-point run"] = seconds
        else:
            timings["warm_series of the other opened runs"] = (
                timings.get("warm_series of the other opened runs", 0) + seconds
            )


# ---------------------------------------------------------------- measuring


def rss_mb() -> tuple[float, float]:
    """(current RSS, peak RSS) of this process in MB."""
    found = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                found[line[:5]] = int(line.split()[1]) / 1024
    return found.get("VmRSS", 0.0), found.get("VmHWM", 0.0)


def pct(values, q) -> float:
    s = sorted(values)
    return s[max(0, math.ceil(q * len(s)) - 1)]


class QueryTimer:
    """Counts a request's SQL queries and the time spent in them (psycopg2 fetches in execute)."""

    def __init__(self):
        self.count = 0
        self.seconds = 0.0

    def __call__(self, execute, sql, params, many, context):
        t0 = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.count += 1
            self.seconds += time.perf_counter() - t0


class Bench:
    def __init__(self, client, args):
        self.client = client
        self.args = args
        self.rows = []

    def get(self, url, accept_json=False):
        headers = {"HTTP_ACCEPT": "application/json"} if accept_json else {}
        resp = self.client.get(url, **headers)
        if resp.status_code != 200:
            raise SystemExit(f"GET {url}: {resp.status_code}\n{resp.content[:800]!r}")
        return resp

    def case(self, group, name, url, accept_json=False, repeat=None, warmup=None, prepare=None):
        from django.db import connection

        repeat = repeat or self.args.repeat
        warmup = self.args.warmup if warmup is None else warmup
        first = None
        for i in range(warmup):
            if prepare:
                prepare()
            t0 = time.perf_counter()
            resp = self.get(url, accept_json)
            if i == 0:
                first = (time.perf_counter() - t0) * 1000
        times, db, nq = [], [], []
        for _ in range(repeat):
            if prepare:
                prepare()
            timer = QueryTimer()
            with connection.execute_wrapper(timer):
                t0 = time.perf_counter()
                resp = self.get(url, accept_json)
                times.append((time.perf_counter() - t0) * 1000)
            nq.append(timer.count)
            db.append(timer.seconds * 1000)
        row = {
            "group": group,
            "case": name,
            "url": url,
            "n": repeat,
            "first": first,
            "p50": statistics.median(times),
            "p95": pct(times, 0.95),
            "max": max(times),
            "queries": statistics.median(nq),
            "db_p50": statistics.median(db),
            "bytes": len(resp.content),
        }
        self.rows.append(row)
        print(
            f"  {name:34s} p50 {row['p50']:7.1f}  p95 {row['p95']:7.1f}  first {first or 0:7.1f} ms"
            f"  {row['queries']:.0f} q / {row['db_p50']:.1f} ms SQL  {row['bytes'] / 1024:.0f} KB",
            flush=True,
        )
        return resp


def next_link(resp, rel="next-page") -> str | None:
    m = re.search(rf'<a href="([^"]+)" id="{rel}"', resp.content.decode())
    return "/" + m.group(1).replace("&amp;", "&").lstrip("/") if m else None


def follow(bench, url, pages) -> str:
    for _ in range(pages):
        nxt = next_link(bench.get(url))
        if nxt is None:
            break
        url = nxt if nxt.startswith("/?") or nxt.startswith("/") else "/" + nxt
    return url


def table_cases(bench, meta, every=False) -> dict:
    q = lambda **kw: "/?" + urlencode(kw)  # noqa: E731
    cases = {
        "default page": "/",
        "default, page 20 (cursor)": ("/", 19),
        "filtered: status + expr": q(status="SUCCEEDED", expr="accuracy > 0.9 and epochs >= 5"),
        "filtered: dataset + template": q(dataset=meta["dataset"], template="lstm"),
        "filtered: submitter": q(submitter=meta["submitter"]),
        "filtered: tag": q(tag="baseline"),
        "sorted: -test_accuracy": q(sort="-test_accuracy"),
        "sorted: -test_accuracy, page 10": (q(sort="-test_accuracy"), 9),
        "sorted: final_loss + filter": q(sort="final_loss", status="SUCCEEDED", template="cnn"),
        "sorted: submitter (join)": q(sort="submitter"),
        "search: q=augment": q(q="augment"),
        "search: q=zebra (no match)": q(q="zebra"),
        "search + sort: q=tuned, -accuracy": q(q="tuned", sort="-test_accuracy"),
    }
    if every:  # --all-table-cases: every other filter and sort column
        since = (END - timedelta(days=30)).date().isoformat()
        cases |= {
            "archived shown": q(archived=1),
            "archived only": q(archived="only"),
            "status FAILED": q(status="FAILED"),
            "status QUEUED (rare)": q(status="QUEUED"),
            "two tags": q(tag="sweep,v2"),
            "rare tag": q(tag="exp-042"),
            "expr or/not": q(expr='(status = failed or lr < 0.001) and not tag = "sweep"'),
            "expr name ~": q(expr='name ~ "warmup" and duration > 600'),
            "since 30 days": q(since=since),
            "starred": q(starred=1),
            "search 2 words": q(q="cnn warmup"),
            **{f"sorted: {key}": q(sort=key) for key in ("learning_rate", "-duration", "name", "status", "dataset")},
            "sorted: -created, size 100 (the largest page)": q(size=100),
            "chosen columns": q(cols="name,status,test_accuracy,epochs,learning_rate,tags"),
        }
    urls = {}
    for name, spec in cases.items():
        url = follow(bench, spec[0], spec[1]) if isinstance(spec, tuple) else spec
        if isinstance(spec, tuple) and "cursor=" not in url:
            raise SystemExit(f"{name}: no next page to follow from {spec[0]}")
        bench.case("table", name, url)
        urls[name] = url
    return urls


def explain(client, urls, names, full) -> list[str]:
    """EXPLAIN (ANALYZE, BUFFERS) of the run table's queries on runs_run for the given cases."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    out = []
    for name in names:
        with CaptureQueriesContext(connection) as ctx:
            client.get(urls[name])
        queries = [
            q["sql"]
            for q in ctx.captured_queries
            if 'FROM "runs_run"' in q["sql"] and "runs_metricpoint" not in q["sql"] and "COUNT(" not in q["sql"]
        ]
        out.append(f"--- {name}: {urls[name][:140]}")
        for i, sql in enumerate(queries):
            with connection.cursor() as cur:
                cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
                plan = [r[0] for r in cur.fetchall()]
            label = "keys (ids + sort value)" if i == 0 else "rows by id"
            if full:
                out.append(f"  [{label}] {sql[:600]}{'…' if len(sql) > 600 else ''}")
                out += ["    " + line for line in plan]
            else:
                exec_ms = next((ln for ln in plan if ln.startswith("Execution Time")), "")
                out.append(f"  [{label}] {plan[0].strip()[:150]} | {exec_ms}")
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ["DATABASE_URL"] = args.db
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only")
    os.environ["DJANGO_SETTINGS_MODULE"] = "webapp.settings"
    os.environ["SPARKDECK_VAR_DIR"] = args.var_dir
    os.environ["SPARKDECK_ARTIFACT_ROOT"] = str(Path(args.var_dir) / "artifacts")
    os.environ["SPARKDECK_DATA_ROOT"] = str(Path(args.var_dir) / "data")
    os.environ.pop("CELERY_BROKER_URL", None)

    t_all = time.perf_counter()
    load_before = os.getloadavg()
    print(f"bench/history.py: {sizes(args)}; {os.cpu_count()} CPUs, load average {load_before[0]:.2f}")
    var = Path(args.var_dir).resolve()
    if len(var.parts) < 3 or var in (REPO, *REPO.parents) or var == Path.home():
        raise SystemExit(f"refusing --var-dir {var}: the bench empties it; give it a folder of its own")
    reused = prepare_database(args)
    if reused and not _seeded_files(args):
        print(f"{args.var_dir} lacks the seeded prediction file: seeding again")
        reused = prepare_database(args, fresh=True)
    if not reused:
        shutil.rmtree(args.var_dir, ignore_errors=True)

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    timings = {}
    try:
        if reused:
            with connection.cursor() as cur:
                cur.execute(f"SELECT meta FROM {META_TABLE}")
                meta = json.loads(cur.fetchone()[0])
            print(f"reusing the seeded database {args.db}")
        else:
            t0 = time.perf_counter()
            call_command("migrate", verbosity=0)
            timings["migrate"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            meta = seed(args, timings)
            print(f"summary columns (webapp/runs/summary.py recomputed): {check_summaries()}")
            timings["seeding in all"] = time.perf_counter() - t0
        warm(meta, timings)
        return measure(args, meta, timings, load_before, t_all, Client)
    finally:
        if not args.keep:
            drop_database(args)
            shutil.rmtree(args.var_dir, ignore_errors=True)
            print(f"dropped the bench database and {args.var_dir}")
        else:
            print(f"kept the bench database ({args.db}) and {args.var_dir}; --keep reuses them")


def measure(args, meta, timings, load_before, t_all, Client) -> int:
    from django.contrib.auth import get_user_model
    from django.core.cache import cache
    from django.db import connection

    from webapp.runs.models import MetricPoint, Run

    with connection.cursor() as cur:
        cur.execute("SELECT version()")
        pg_version = cur.fetchone()[0].split(",")[0]
    runs = Run.objects.count()
    points = MetricPoint.objects.count()
    with connection.cursor() as cur:
        cur.execute(
            "SELECT relname, relpages, relallvisible FROM pg_class WHERE relname IN (%s, %s)",
            [Run._meta.db_table, MetricPoint._meta.db_table],
        )
        visible = {name: (pages, allvis) for name, pages, allvis in cur.fetchall()}
    print(
        f"\n{pg_version}; {runs:,} runs ({meta['team_runs']:,} in the biggest team), {points:,} metric points; "
        f"big run {meta['big_run']} ({meta['big_run_points']:,} points), prediction run {meta['pred_run']}"
    )
    for k, v in timings.items():
        print(f"  {k:55s} {v:7.1f} s")
    for name, (pages, allvis) in visible.items():
        note = (
            "" if allvis >= 0.99 * pages else "  (not all-visible: index-only scans read the heap; a long transaction?)"
        )
        print(f"  {name}: {pages:,} pages, {allvis:,} all-visible{note}")

    client = Client()
    client.force_login(get_user_model().objects.get(username="bench"))
    session = client.session
    session["team_id"] = meta["team"]
    session.save()
    bench = Bench(client, args)
    urls = {}
    big, pred = meta["big_run"], meta["pred_run"]

    if "table" in args.only:
        print("\nrun table (the biggest team)")
        urls = table_cases(bench, meta, args.all_table_cases)

    if "run" in args.only:
        print(f"\nrun page of run {big} ({meta['big_run_points']:,} points)")
        run = Run.objects.get(pk=big)
        bench.case("run", "run page (HTML)", f"/runs/{big}/")
        bench.case("run", "series.json x=step (stored, cached)", f"/runs/{big}/series.json?x=step", True)
        bench.case(
            "run", "series.json x=step (stored file)", f"/runs/{big}/series.json?x=step", True, prepare=cache.clear
        )
        bench.case(
            "run",
            "series.json epochs (progress bar)",
            f"/runs/{big}/series.json?x=epoch&names=epoch_loss,epoch_accuracy",
            True,
        )
        last_id = MetricPoint.objects.filter(run=run).order_by("-id").values_list("id", flat=True).first()
        bench.case(
            "run",
            "live.json (terminal, after series)",
            f"/runs/{big}/live.json?since={last_id}&log=driver:stdout",
            True,
        )
        # Without a stored series (a run finished before warm_series, or a zoom): aggregated in SQL.
        from webapp.runs import metrics

        def forget():
            cache.clear()
            shutil.rmtree(run.run_dir / getattr(metrics, "SERIES_DIR", "series"), ignore_errors=True)

        bench.case(
            "run",
            "series.json x=step, nothing stored",
            f"/runs/{big}/series.json?x=step",
            True,
            repeat=max(5, args.repeat // 5),
            warmup=1,
            prepare=forget,
        )
        last_step = meta["big_run_points"] // 8 * 5  # 4 executors x (loss, accuracy), a point every 5 steps
        lo, hi = last_step // 3, last_step // 3 + last_step // 100
        zoom = f"/runs/{big}/series.json?x=step&start={lo}&end={hi}"
        bench.case("run", "series.json zoom (1/100 of the steps)", zoom, True, prepare=cache.clear)
        metrics.warm_series(Run.objects.get(pk=big))

    if "compare" in args.only:
        ids = ",".join(str(i) for i in meta["compare"])
        print(f"\ncompare {len(meta['compare'])} runs: {ids} (points: {meta['compare_points']})")
        bench.case("compare", "compare page (HTML)", f"/runs/compare/?ids={ids}")
        bench.case("compare", "compare data.json x=step", f"/runs/compare/data.json?ids={ids}&x=step", True)
        bench.case(
            "compare",
            "compare data.json x=step (stored file)",
            f"/runs/compare/data.json?ids={ids}&x=step",
            True,
            prepare=cache.clear,
        )
        bench.case("compare", "compare data.json x=epoch", f"/runs/compare/data.json?ids={ids}&x=epoch", True)

    mem = {}
    if "predictions" in args.only:
        print(f"\nprediction table of run {pred} ({args.pred_rows:,} rows)")
        base = f"/runs/{pred}/predictions/"
        deep = max(1, args.pred_rows // 50 * 3 // 4)
        mem["before"] = rss_mb()
        pred_urls = []
        for name, query in (
            ("unfiltered, page 1", ""),
            (f"unfiltered, page {deep:,}", f"page={deep}"),
            ("true class 3", "true=3"),
            ("true class 3, page 500", "true=3&page=500"),
            ("predicted class 5", "pred=5"),
            ("errors only", "errors=1"),
            ("errors only, page 2,000", "errors=1&page=2000"),
            ("confidence 0.5-0.8", "conf_min=0.5&conf_max=0.8"),
            ("true 3 + errors + conf >= 0.9", "true=3&errors=1&conf_min=0.9"),
        ):
            pred_urls.append(base + ("?" + query if query else ""))
            bench.case("predictions", name, pred_urls[-1])
        mem["after"] = rss_mb()
        # Then a soak: every case in turn, RSS sampled every 100 requests (flat = no growth per request).
        mem["soak"] = []
        for i in range(args.soak):
            bench.get(pred_urls[i % len(pred_urls)])
            if i % 100 == 99:
                mem["soak"].append(rss_mb()[0])

    # ---- the figures
    print("\n" + "=" * 118)
    head = ("group", "case", "n", "first", "p50", "p95", "SQL p50", "q", "target", "p95/target")
    print("{:12s} {:36s} {:>3s} {:>7s} {:>7s} {:>7s} {:>8s} {:>4s} {:>7s} {:>10s}".format(*head))
    print("-" * 118)
    missed = []
    for r in bench.rows:
        target = TARGETS[r["group"]]
        ratio = r["p95"] / target
        diagnostic = "nothing stored" in r["case"] or "zoom" in r["case"] or r["group"] in REFERENCE_ONLY
        flag = "" if ratio <= 1 else (" (info)" if diagnostic else " MISSED")
        if flag == " MISSED":
            missed.append(r)
        print(
            f"{r['group']:12s} {r['case'][:36]:36s} {r['n']:3d} {r['first'] or 0:7.1f} {r['p50']:7.1f} {r['p95']:7.1f}"
            f" {r['db_p50']:8.1f} {r['queries']:4.0f} {target:7.0f} {ratio:9.2f}x{flag}"
        )
    print("-" * 118)
    print("ms, wall time around client.get in-process (Django test client); 'first' = the first warm-up request;")
    print("SQL p50 = the request's time in cursor.execute (execute_wrapper); q = queries per request.")
    print("compare: no target of its own, shown against the run page's 200 ms. (info): over 1x but no target:")
    print("compare; a run finished before warm_series existed (nothing stored: aggregated in SQL); a zoom.")
    if mem:
        b, a, soak = mem["before"], mem["after"], mem["soak"] or [0.0]
        cases = sum(r["n"] + args.warmup for r in bench.rows if r["group"] == "predictions")
        print(
            f"RSS (this process): {b[0]:.0f} MB before the first prediction request, {a[0]:.0f} MB after the"
            f" {cases} requests of the cases, then {min(soak):.0f}-{max(soak):.0f} MB sampled every 100 of"
            f" {args.soak} more (peak RSS of the process {rss_mb()[1]:.0f} MB, seeding included)"
        )
    load_after = os.getloadavg()
    print(f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after (1 min); {os.cpu_count()} CPUs")
    print(f"whole bench {time.perf_counter() - t_all:.0f} s")

    if "table" in args.only:
        print("\nEXPLAIN (ANALYZE, BUFFERS) of the run table's queries")
        for line in explain(
            client, urls, ["default page", "sorted: -test_accuracy", "sorted: -test_accuracy, page 10"], True
        ):
            print(line)
        print("\nother table cases (top plan node | execution time)")
        others = [
            n for n in urls if n not in ("default page", "sorted: -test_accuracy", "sorted: -test_accuracy, page 10")
        ]
        for line in explain(client, urls, others, False):
            print(line)
    if missed:
        print("\nMISSED: " + ", ".join(f"{r['group']}/{r['case']} p95 {r['p95']:.0f} ms" for r in missed))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
