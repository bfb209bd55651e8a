"""A sweep's search space: what the user asks for each hyperparameter of a template, validated
against the template's schema (webapp/catalog/registry.py), and turned into Optuna distributions.

A space is JSON, one entry per varied hyperparameter:
  {"type": "range", "low": 1e-4, "high": 0.1, "log": true}         int or float, as the schema's type
  {"type": "range", "low": 8, "high": 64, "step": 8}               grid: every step; float grid: "points"
  {"type": "choice", "values": ["adam", "sgd"]}
  {"type": "fixed", "value": 5}                                    the same as a fixed hyperparameter
Hyperparameters not in the space keep their fixed value (or the template's default).
"""

from __future__ import annotations

import math

from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

STRATEGIES = ("grid", "random", "tpe")
MAX_TRIALS = 500
MAX_CHOICES = 50
MAX_GRID_POINTS = 100  # per hyperparameter
ENTRY_TYPES = ("fixed", "choice", "range")


class SpaceError(ValueError):
    """`errors` maps a field (a hyperparameter's name, or "space") to a message."""

    def __init__(self, errors: dict):
        self.errors = errors
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))


def _number(param, raw, what: str):
    """A bound or step of a numeric hyperparameter, parsed and range-checked by the schema itself."""
    try:
        return param.parse(raw)
    except ValueError as exc:
        raise ValueError(f"{what} {exc}") from None


def clean_entry(param, raw, strategy: str) -> dict:
    """One space entry, normalized; raises ValueError with the message for that hyperparameter."""
    if not isinstance(raw, dict):
        raise ValueError('must be an object with a "type": fixed, choice or range')
    kind = raw.get("type")
    if kind not in ENTRY_TYPES:
        raise ValueError("type must be fixed, choice or range")
    if kind == "fixed":
        return {"type": "fixed", "value": param.parse(raw.get("value", param.default))}
    if kind == "choice":
        values = raw.get("values")
        if not isinstance(values, list) or not values:
            raise ValueError("a choice needs a non-empty list of values")
        if len(values) > MAX_CHOICES:
            raise ValueError(f"at most {MAX_CHOICES} choices")
        out = []
        for v in values:
            if isinstance(v, (dict, list)):
                raise ValueError("each choice must be a single value")
            parsed = param.parse(v)
            if parsed not in out:
                out.append(parsed)
        return {"type": "choice", "values": out}
    if param.kind not in ("int", "float"):
        raise ValueError(f"{param.name} is not a number: give a list of choices (one of {', '.join(param.choices)})")
    low = _number(param, raw.get("low"), "low")
    high = _number(param, raw.get("high"), "high")
    if not low < high:
        raise ValueError("low must be below high")
    entry = {"type": "range", "low": low, "high": high, "log": bool(raw.get("log", False))}
    if entry["log"] and low <= 0:
        raise ValueError("a log scale needs low > 0")
    step = raw.get("step")
    points = raw.get("points")
    if param.kind == "int":
        if points not in (None, ""):
            raise ValueError("an int range takes a step, not points")
        step = 1 if step in (None, "") else _number(param, step, "step")
        if step < 1:
            raise ValueError("step must be at least 1")
        if entry["log"] and step != 1:
            raise ValueError("a log-scale int range takes step 1")
        entry["step"] = step
        if strategy == "grid" and (high - low) // step + 1 > MAX_GRID_POINTS:
            raise ValueError(f"a grid has at most {MAX_GRID_POINTS} values per hyperparameter; use a larger step")
    else:
        if step not in (None, ""):
            raise ValueError("a float range takes points (grid) or nothing, not a step")
        if strategy == "grid":
            if points in (None, ""):
                raise ValueError("a grid over a float range needs points: how many values from low to high")
            if isinstance(points, bool) or not isinstance(points, int) or not 2 <= points <= MAX_GRID_POINTS:
                raise ValueError(f"points must be a whole number from 2 to {MAX_GRID_POINTS}")
            entry["points"] = points
        elif points not in (None, ""):
            raise ValueError("points are for a grid; random and TPE sample the whole range")
    return entry


def clean(template, space, strategy: str) -> dict:
    """The space, normalized (entries sorted by the schema's order); raises SpaceError per field."""
    if strategy not in STRATEGIES:
        raise SpaceError({"strategy": f"choose one of {', '.join(STRATEGIES)}"})
    if not isinstance(space, dict):
        raise SpaceError({"space": "must be an object: hyperparameter → fixed, choice or range"})
    errors, out = {}, {}
    for name in space:
        param = template.param(name) if isinstance(name, str) else None
        if param is None:
            errors[str(name)[:64]] = f"{template.label} has no hyperparameter {str(name)[:64]!r}"
        elif param.refs:
            errors[name] = "the model a run builds on cannot be swept; set it as a fixed value"
    for param in template.params:
        if param.name not in space or param.name in errors:
            continue
        try:
            out[param.name] = clean_entry(param, space[param.name], strategy)
        except ValueError as exc:
            errors[param.name] = str(exc)
    if errors:
        raise SpaceError(errors)
    if not any(e["type"] != "fixed" for e in out.values()):
        raise SpaceError({"space": "vary at least one hyperparameter (a list of choices or a range)"})
    return out


def fixed_values(space: dict) -> dict:
    return {name: e["value"] for name, e in space.items() if e["type"] == "fixed"}


def varied(space: dict) -> dict:
    return {name: e for name, e in space.items() if e["type"] != "fixed"}


def grid_values(entry: dict) -> list:
    """The values a grid takes for one entry (choices as they are; ranges by step or points)."""
    if entry["type"] == "choice":
        return list(entry["values"])
    low, high = entry["low"], entry["high"]
    if "step" in entry:
        return list(range(low, high + 1, entry["step"]))
    n = entry["points"]
    if entry["log"]:
        a, b = math.log(low), math.log(high)
        return [float(f"{math.exp(a + (b - a) * i / (n - 1)):.6g}") for i in range(n)]
    return [float(f"{low + (high - low) * i / (n - 1):.6g}") for i in range(n)]


def grid(space: dict) -> dict:
    return {name: grid_values(e) for name, e in varied(space).items()}


def grid_size(space: dict) -> int:
    return math.prod(len(v) for v in grid(space).values())


def distributions(space: dict, strategy: str) -> dict:
    """Optuna distributions of the varied hyperparameters (a grid's are its value lists)."""
    out = {}
    for name, e in varied(space).items():
        if strategy == "grid" or e["type"] == "choice":
            out[name] = CategoricalDistribution(grid_values(e) if strategy == "grid" else e["values"])
        elif isinstance(e["low"], int) and "step" in e:
            out[name] = IntDistribution(e["low"], e["high"], log=e["log"], step=e["step"])
        else:
            out[name] = FloatDistribution(float(e["low"]), float(e["high"]), log=e["log"])
    return out


def describe(entry: dict) -> str:
    """ "0.0001 – 0.1 (log)", "adam, sgd", "5": the form and the sweep page."""
    if entry["type"] == "fixed":
        return str(entry["value"])
    if entry["type"] == "choice":
        return ", ".join(str(v) for v in entry["values"])
    text = f"{entry['low']} – {entry['high']}"
    if entry.get("log"):
        text += " (log)"
    if entry.get("step", 1) != 1:
        text += f" step {entry['step']}"
    if entry.get("points"):
        text += f", {entry['points']} points"
    return text
