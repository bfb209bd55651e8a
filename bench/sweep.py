"""Bench: hyperparameter sweeps through the real path, each part against its baseline in the same run.

Every trial is a real TFoS run of the CNN on scikit-learn's digits: the sweep service → Celery →
spark-submit on a 2-worker × 1-core loopback Spark standalone cluster (bench/stack.py, with gunicorn
answering the executors' epoch reports). One executor × 1 core per trial, so two trials fit at once.

1. parallel: a 4-trial random sweep with 2 trials at once vs 1 at once (goal: ≥ 1.6x faster).
2. asha: an 8-trial random sweep with successive halving vs without, same seed and space: the
   trial-epochs spent, wall time, best validation accuracy (goal: ≤ 50% of the epochs, best within
   0.5 points).
3. tuned: the test error of the (last) ASHA sweep's best trial vs a run with the template's defaults.

    .venv/bin/python bench/sweep.py [--only parallel,asha,tuned] [--epochs 6] [--reduction-factors 3,4]
"""

import argparse
import sys
import time

from stack import EmbeddedStack

SEED = 7
PARALLEL_SPACE = {"learning_rate": {"type": "range", "low": 0.0005, "high": 0.01, "log": True}}
SEARCH_SPACE = {
    "learning_rate": {"type": "range", "low": 0.0001, "high": 0.05, "log": True},
    "dropout": {"type": "range", "low": 0.0, "high": 0.6},
    "filters": {"type": "choice", "values": [8, 16, 32]},
    "dense_units": {"type": "choice", "values": [64, 256, 1024]},
}


def run_sweep(stack, dataset, *, space, max_trials, parallel, pruner="none", epochs=4, warmup=1, reduction=3):
    from webapp.sweeps import services
    from webapp.sweeps.models import Sweep

    t0 = time.time()
    sweep = services.create_sweep(
        team=stack.team,
        user=stack.user,
        dataset=dataset,
        template="cnn",
        space=space,
        hyperparameters={"epochs": epochs, "batch_size": 64},
        cluster=stack.db_cluster,
        strategy="random",
        objective="val_accuracy",
        pruner=pruner,
        pruner_warmup_epochs=warmup,
        pruner_reduction_factor=reduction,
        max_trials=max_trials,
        parallel=parallel,
        seed=SEED,
        num_executors=1,
        executor_cores=1,
        executor_memory_mb=stack.executor_memory_mb,
        name=f"bench {pruner} x{parallel}",
    )
    while not Sweep.objects.get(pk=sweep.pk).is_terminal:
        time.sleep(0.5)
    wall = time.time() - t0
    sweep.refresh_from_db()
    trials = list(sweep.trials.select_related("run").order_by("number"))
    best = services.best_trial(sweep)
    epochs_used = sum(t.epochs_run or 0 for t in trials)
    states = {}
    for t in trials:
        states[t.status] = states.get(t.status, 0) + 1
    print(
        f"  sweep {sweep.pk} ({pruner}, {parallel} at once): {sweep.status} in {wall:.1f} s, "
        f"{epochs_used} trial-epochs, {states}, best val_accuracy {best.value if best else None}",
        flush=True,
    )
    for t in trials:
        print(
            f"    trial {t.number}: {t.status} value {t.value} epochs {t.epochs_run} "
            f"pruned_at {t.pruned_at_epoch} params {t.params}",
            flush=True,
        )
    return {"sweep": sweep, "wall": wall, "epochs": epochs_used, "best": best, "trials": trials}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="parallel,asha,tuned")
    ap.add_argument("--epochs", type=int, default=6, help="epochs per trial in the asha part")
    ap.add_argument("--asha-parallel", type=int, default=2, help="trials at once in the asha part")
    ap.add_argument("--reduction-factors", default="3", help="ASHA reduction factors to measure, comma-separated")
    args = ap.parse_args()
    only = set(args.only.split(","))
    lines = []
    t_all = time.time()
    with EmbeddedStack(worker_memory="3g", executor_memory_mb=1536) as stack:
        stack.wait_web()
        from webapp.datasets.ingest import write_digits_npz

        path = stack.root / "digits.npz"
        write_digits_npz(path)
        digits = stack.dataset("digits", path)

        if "parallel" in only:
            print("parallel: 4 trials, 2 at once vs 1 at once", flush=True)
            one = run_sweep(stack, digits, space=PARALLEL_SPACE, max_trials=4, parallel=1)
            two = run_sweep(stack, digits, space=PARALLEL_SPACE, max_trials=4, parallel=2)
            lines.append(
                f"parallel: 1 at once {one['wall']:.1f} s, 2 at once {two['wall']:.1f} s: "
                f"speedup {one['wall'] / two['wall']:.2f}x (goal >= 1.6x)"
            )
        if only & {"asha", "tuned"}:
            at_once = args.asha_parallel
            print(f"asha: 8 trials x {args.epochs} epochs, {at_once} at once, without vs with successive halving")
            plain = run_sweep(
                stack, digits, space=SEARCH_SPACE, max_trials=8, parallel=at_once, epochs=args.epochs, pruner="none"
            )
            for factor in (int(f) for f in args.reduction_factors.split(",")):
                asha = run_sweep(
                    stack,
                    digits,
                    space=SEARCH_SPACE,
                    max_trials=8,
                    parallel=at_once,
                    epochs=args.epochs,
                    pruner="asha",
                    reduction=factor,
                )
                if "asha" in only:
                    b0 = plain["best"].value if plain["best"] else float("nan")
                    b1 = asha["best"].value if asha["best"] else float("nan")
                    lines.append(
                        f"asha (reduction factor {factor}, {at_once} at once, {args.epochs} epochs): "
                        f"trial-epochs {asha['epochs']} vs {plain['epochs']} "
                        f"({asha['epochs'] / max(1, plain['epochs']):.0%}, goal <= 50%); wall {asha['wall']:.1f} s "
                        f"vs {plain['wall']:.1f} s ({plain['wall'] / asha['wall']:.2f}x); best val_accuracy "
                        f"{b1:.4f} vs {b0:.4f} ({(b1 - b0) * 100:+.2f} points, goal within 0.5)"
                    )
            if "tuned" in only:
                print("tuned: the template's defaults, one run on the same split", flush=True)
                default, wall = stack.run(digits, "cnn", {}, executors=1)
                best = asha["best"] or plain["best"]
                tuned_acc = best.run.test_accuracy if best else None
                if default.test_accuracy is None or tuned_acc is None:
                    lines.append(f"tuned: not measured (default {default.status}, best trial {best})")
                else:
                    e0, e1 = 1 - default.test_accuracy, 1 - tuned_acc
                    change = (e0 - e1) / e0 if e0 else 0.0
                    lines.append(
                        f"tuned: test error {e1:.4f} (best trial {best.number} of sweep {best.sweep_id}, "
                        f"{best.params}) vs {e0:.4f} (defaults, {default.result.get('epochs')} epochs, {wall:.0f} s): "
                        f"{change:+.0%} lower error"
                    )
    print()
    for line in lines:
        print(line)
    print(f"total {time.time() - t_all:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
