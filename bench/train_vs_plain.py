"""Bench: the same CNN training as a TFoS run submitted through Sparkdeck vs one plain TF process.

Starts the whole embedded stack in a temp dir (SQLite, filesystem Celery transport, a Celery
worker with beat, gunicorn for metric ingest, a 2-worker loopback Spark standalone cluster),
uploads a digits-derived dataset through the dataset service, submits a run through the run
service (the same path as the web form) and waits for it. Then it runs workers.jobs.plain_baseline
on the same Parquet files with the same hyperparameters. Prints both times and the ratio.

    .venv/bin/python bench/train_vs_plain.py --epochs 5 [--upscale 28 --copies 4] [--input-mode spark]
        [--executors 1 --executor-cores 2] [--trials 3]

The default (2 executors x 1 core on 2 one-core workers) is data-parallel training on two
processes; `--executors 1 --executor-cores 2` (workers of 2 cores) runs the same TFoS job as one
node with the machine's two cores, as the plain process has: what is left is the platform's own
overhead. On a machine with only 2 cores the first cannot beat one process using both.
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from stack import REPO, EmbeddedStack


def make_dataset(path: Path, upscale: int, copies: int, seed: int = 0) -> None:
    """scikit-learn digits, optionally upscaled (8→24 px, padded to `upscale`) and shifted copies."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x, y = d.images.astype("float32"), d.target.astype("int64")
    if upscale and upscale > 8:
        x = np.kron(x, np.ones((3, 3), dtype="float32"))
        pad = (upscale - 24) // 2
        x = np.pad(x, ((0, 0), (pad, upscale - 24 - pad), (pad, upscale - 24 - pad)))
    rng = np.random.default_rng(seed)
    xs, ys = [x], [y]
    for _ in range(copies - 1):
        sx, sy = rng.integers(-2, 3, size=2)
        xs.append(np.roll(np.roll(x, sx, axis=1), sy, axis=2))
        ys.append(y)
    np.savez(path, x=np.concatenate(xs), y=np.concatenate(ys))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--upscale", type=int, default=0, help="0 keeps 8x8; 28 gives MNIST-sized images")
    ap.add_argument("--copies", type=int, default=1)
    ap.add_argument("--input-mode", default="tensorflow", choices=["tensorflow", "spark"])
    ap.add_argument("--executors", type=int, default=2, help="TFoS cluster size")
    ap.add_argument("--executor-cores", type=int, default=1, help="cores per executor (and per Spark worker)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    ap.add_argument("--trials", type=int, default=1, help="app run + plain run pairs; >1 also prints medians")
    ap.add_argument("--reconcile-seconds", type=float, default=2.0, help="the reconcile period (shipped default: 2 s)")
    ap.add_argument("--java-opts", default="", help="extra JVM options for the driver and the executors")
    ap.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="untimed 1-epoch app runs first: a stack's first run learns the JVM class archives (workers/jvm_cds.py)",
    )
    ap.add_argument(
        "--plain-malloc",
        action="store_true",
        help="also time the plain process with the executors' malloc settings (workers/jobs/malloc_env.py)",
    )
    args = ap.parse_args()

    with EmbeddedStack(
        keep=args.keep, worker_cores=args.executor_cores, reconcile_seconds=args.reconcile_seconds
    ) as stack:
        if args.java_opts:
            stack.db_cluster.extra_conf = {
                "spark.driver.extraJavaOptions": args.java_opts,
                "spark.executor.extraJavaOptions": args.java_opts,
            }
            stack.db_cluster.save(update_fields=["extra_conf"])
        npz = stack.root / "bench.npz"
        make_dataset(npz, args.upscale, args.copies)
        ds = stack.dataset("bench", npz)
        hp = {"epochs": args.epochs, "batch_size": args.batch_size, "learning_rate": 0.002}
        print(
            f"dataset: {ds.train_rows} train / {ds.test_rows} test rows, shape {ds.shape}; "
            f"epochs {args.epochs}, batch {args.batch_size}, input mode {args.input_mode}, "
            f"{args.executors} executor(s) x {args.executor_cores} core(s); {args.trials} trial(s)"
        )
        print(f"cluster start (not counted, long-lived):  {stack.cluster_start_seconds:6.1f} s")
        for _ in range(args.warmup):
            run, wall = stack.run(
                ds,
                "cnn",
                {**hp, "epochs": 1},
                input_mode=args.input_mode,
                executors=args.executors,
                cores=args.executor_cores,
            )
            print(f"warm-up run (not counted): {run.status} in {wall:.1f} s")
            time.sleep(3)  # the executors' class archive is written as their JVMs exit, after the run
        trials = []
        for i in range(args.trials):  # app and plain alternate, so machine drift hits both
            t = one_trial(stack, ds, hp, args)
            if t is None:
                return 1
            trials.append(t)
            if args.trials > 1:
                print(f"--- trial {i + 1}")
            report(t)
        if args.trials > 1:
            print(f"=== median of {args.trials} trials")
            report({k: statistics.median(t[k] for t in trials) for k in trials[0] if k != "res"} | {"res": {}})
        return 0


def plain_process(stack, spec_path, extra_env=None):
    t = time.time()
    out = subprocess.run(
        [sys.executable, "-m", "workers.jobs.plain_baseline", "--spec", str(spec_path)],
        cwd=REPO,
        env={**stack.env, "TF_USE_LEGACY_KERAS": "1", **(extra_env or {})},
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.time() - t
    return wall, json.loads(out.stdout.split("PLAIN_BASELINE=")[1].splitlines()[0])


def one_trial(stack, ds, hp, args) -> dict | None:
    from webapp.runs.lifecycle import build_spec

    run, app_wall = stack.run(
        ds, "cnn", hp, input_mode=args.input_mode, executors=args.executors, cores=args.executor_cores
    )
    if run.status != run.Status.SUCCEEDED:
        print(f"run FAILED: {run.status_reason}\n{run.status_detail}")
        return None
    res = run.result
    spec_path = stack.root / f"plain-spec-{run.pk}.json"
    spec_path.write_text(json.dumps(build_spec(run)))
    plain_wall, plain = plain_process(stack, spec_path)
    t = {
        "app_wall": app_wall,
        "app_fit": res.get("fit_seconds", 0.0),
        "app_accuracy": run.test_accuracy,
        "queue": run.submitted_at.timestamp() - run.created_at.timestamp(),
        "to_running": (run.started_at or run.finished_at).timestamp() - run.submitted_at.timestamp(),
        "plain_wall": plain_wall,
        "plain_fit": plain["fit_seconds"],
        "plain_accuracy": plain["test_accuracy"],
        "res": res,
    }
    if args.plain_malloc:
        # The fair twin: the plain process with the malloc settings the executors get.
        from workers.jobs.malloc_env import MALLOC_ENV

        t["tuned_wall"], tuned = plain_process(stack, spec_path, MALLOC_ENV)
        t["tuned_fit"] = tuned["fit_seconds"]
    return t


def report(t: dict) -> None:
    print(
        f"plain TF process (import+fit+predict):    {t['plain_wall']:6.1f} s   fit {t['plain_fit']:.1f} s, "
        f"accuracy {t['plain_accuracy']:.4f}"
    )
    if "tuned_wall" in t:
        print(f"plain TF, executors' malloc settings:     {t['tuned_wall']:6.1f} s   fit {t['tuned_fit']:.1f} s")
    print(f"Sparkdeck run, submit → SUCCEEDED seen:   {t['app_wall']:6.1f} s   accuracy {t['app_accuracy']:.4f}")
    print(f"  queued → submitted (Celery):            {t['queue']:6.1f} s")
    print(f"  submitted → RUNNING seen (JVM, app reg): {t['to_running']:6.1f} s")
    for key in ("startup_seconds", "train_seconds", "fit_seconds", "inference_seconds", "total_seconds"):
        if key in t["res"]:
            print(f"  job {key:<32} {t['res'][key]:6.1f} s")
    print(f"RATIO app/plain (wall) = {t['app_wall'] / t['plain_wall']:.2f}")
    print(f"FIXED OVERHEAD app - plain = {t['app_wall'] - t['plain_wall']:.1f} s")
    # What is not training: each side's wall minus its own model.fit.
    outside = (t["app_wall"] - t["app_fit"]) - (t["plain_wall"] - t["plain_fit"])
    print(f"  of which outside fit (app - fit) - (plain - fit) = {outside:.1f} s")
    print(f"RATIO fit (TFoS fit / plain fit) = {t['app_fit'] / t['plain_fit']:.2f}")
    if "tuned_wall" in t:
        print(f"RATIO app/plain with the executors' malloc settings (wall) = {t['app_wall'] / t['tuned_wall']:.2f}")
        print(f"FIXED OVERHEAD app - that plain = {t['app_wall'] - t['tuned_wall']:.1f} s")


if __name__ == "__main__":
    raise SystemExit(main())
