"""A synthetic sequence classification set (4 wave shapes) as demo uploads for the sequence layout.

Each row is a noisy wave of ``steps`` values (or ``features`` values per step) with a random
amplitude, level and phase; the class is its shape:

- ``sine``: a sine wave with a long period (14–20 steps),
- ``square``: a square wave with a short period (5–7 steps),
- ``sawtooth``: rising ramps that drop back, period 9–11 steps,
- ``trend``: no period at all, a straight rise or fall across the whole sequence.

The random phase and level mean that no single time step and no row mean tells the classes apart
(a linear model on the raw values stays near chance); the shape over time does, so a sequence model
separates them almost perfectly. Same arguments, same data: everything comes from ``seed``.
"""

import csv
from pathlib import Path

import numpy as np

SEQUENCE_CLASSES = ("sine", "square", "sawtooth", "trend")
NOISE = 0.25  # standard deviation of the per-value Gaussian noise; wave amplitudes are 0.8..1.2
DECIMALS = 4  # values are rounded so that the CSV and the NPZ hold the same numbers


def make_sequences(n: int = 1200, steps: int = 30, seed: int = 0, features: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Return (x of shape (n, steps, features), y class names of shape (n,)), classes balanced.

    x is float64 rounded to DECIMALS places, so the CSV's text holds exactly the NPZ's numbers.

    With several features, feature f is the same wave a quarter period later per feature (the
    trend is the same line), each with its own noise.
    """
    if n < 2 * len(SEQUENCE_CLASSES):
        raise ValueError(f"n must be at least {2 * len(SEQUENCE_CLASSES)} (2 rows per class), not {n}")
    if steps < 2 or features < 1:
        raise ValueError(f"need steps >= 2 and features >= 1, not steps={steps}, features={features}")
    rng = np.random.default_rng(seed)
    k = len(SEQUENCE_CLASSES)
    codes = np.arange(n) % k
    rng.shuffle(codes)

    amplitude = rng.uniform(0.8, 1.2, n)
    level = rng.uniform(-0.3, 0.3, n)
    phase = rng.uniform(0.0, 1.0, n)
    low, high = np.array([14.0, 5.0, 9.0, 1.0]), np.array([20.0, 7.0, 11.0, 1.0])
    period = rng.uniform(low[codes], high[codes])
    slope = rng.choice([-1.0, 1.0], n) * rng.uniform(0.8, 1.2, n)
    noise = rng.normal(0.0, NOISE, (n, steps, features))

    t = np.arange(steps, dtype=np.float64)[None, :, None]
    lag = (np.arange(features, dtype=np.float64) / 4.0)[None, None, :]
    cycle = (t / period[:, None, None] + phase[:, None, None] + lag) % 1.0  # position within a period
    waves = {
        "sine": np.sin(2.0 * np.pi * cycle),
        "square": np.where(cycle < 0.5, 1.0, -1.0),
        "sawtooth": 2.0 * cycle - 1.0,
        "trend": np.broadcast_to(slope[:, None, None] * (2.0 * t / (steps - 1) - 1.0), cycle.shape),
    }
    shape = np.select([codes[:, None, None] == i for i in range(k)], [waves[name] for name in SEQUENCE_CLASSES])
    x = level[:, None, None] + amplitude[:, None, None] * shape + noise
    y = np.array(SEQUENCE_CLASSES)[codes]
    return np.round(x, DECIMALS), y


def write_sequences_npz(path: Path, n: int = 1200, steps: int = 30, seed: int = 0, features: int = 1) -> Path:
    """Write x (float64) of shape (n, steps) (or (n, steps, features) when features > 1) and y (class names)."""
    x, y = make_sequences(n, steps, seed, features)
    if features == 1:
        x = x[:, :, 0]
    with open(path, "wb") as fh:  # a file object, so numpy does not append ".npz" to the name
        np.savez_compressed(fh, x=x, y=y)
    return Path(path)


def write_sequences_csv(path: Path, n: int = 1200, steps: int = 30, seed: int = 0, features: int = 1) -> Path:
    """Write one row per sequence: columns t0..t{steps-1} (or t0_f0, t0_f1, …: row-major steps ×
    features when features > 1), then ``label`` (the class name). Upload it with the sequence
    layout; with features > 1 give the shape as "{steps}x{features}".
    """
    x, y = make_sequences(n, steps, seed, features)
    if features == 1:
        names = [f"t{s}" for s in range(steps)]
    else:
        names = [f"t{s}_f{f}" for s in range(steps) for f in range(features)]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow([*names, "label"])
        for row, label in zip(x.reshape(n, -1), y, strict=True):
            writer.writerow([*(f"{v:.{DECIMALS}f}" for v in row.tolist()), str(label)])
    return Path(path)
