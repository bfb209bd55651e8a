"""Extra Spark settings an admin may add to a cluster: an allow-list with a type per key.

Anything TFoS depends on (executor count, task.cpus, dynamic allocation, GPU amounts, the Python
interpreters) is set by Sparkdeck itself and is not on this list; neither is anything that would
run user code or re-route the job (spark.jars, spark.*.extraClassPath, spark.hadoop.*).
"""

from __future__ import annotations

import re

from workers.backends.base import MANAGED_ENV

SIZE_RE = re.compile(r"^\d+[kmgt]?b?$", re.IGNORECASE)  # Spark's byte strings: 512m, 2g, 1024
DURATION_RE = re.compile(r"^\d+(ms|s|m|min|h|d)?$")  # Spark's time strings: 120s, 5min, 500ms
PATH_RE = re.compile(r"^[\w./@%+=:,-]+$")  # a path or URL without spaces or shell syntax
JAVA_OPTS_RE = re.compile(r"^(-[\w.:+=/,@%-]+)( -[\w.:+=/,@%-]+)*$")  # -Dk=v -XX:+Flag ...

# key -> kind; kinds: bool, int, size, duration, path, java_opts, word
ALLOWED: dict[str, str] = {
    "spark.network.timeout": "duration",
    "spark.executor.heartbeatInterval": "duration",
    "spark.locality.wait": "duration",
    "spark.scheduler.maxRegisteredResourcesWaitingTime": "duration",
    "spark.scheduler.minRegisteredResourcesRatio": "ratio",
    "spark.executor.memoryOverhead": "size",
    "spark.driver.memoryOverhead": "size",
    "spark.python.worker.memory": "size",
    "spark.driver.maxResultSize": "size",
    "spark.kryoserializer.buffer.max": "size",
    "spark.rpc.message.maxSize": "int",
    "spark.default.parallelism": "int",
    "spark.sql.shuffle.partitions": "int",
    "spark.task.maxFailures": "int",
    "spark.yarn.maxAppAttempts": "int",
    "spark.yarn.am.memory": "size",
    "spark.yarn.am.cores": "int",
    "spark.eventLog.enabled": "bool",
    "spark.eventLog.dir": "path",
    "spark.local.dir": "path",
    "spark.ui.enabled": "bool",
    "spark.ui.showConsoleProgress": "bool",
    "spark.python.worker.reuse": "bool",
    "spark.executor.extraJavaOptions": "java_opts",
    "spark.driver.extraJavaOptions": "java_opts",
    "spark.executor.resource.gpu.discoveryScript": "path",
    "spark.executor.resource.gpu.vendor": "word",
    "spark.worker.cleanup.enabled": "bool",
}

EXPLAIN = {
    "bool": "true or false",
    "int": "a whole number ≥ 1",
    "ratio": "a number between 0 and 1",
    "size": "a size such as 512m or 2g",
    "duration": "a duration such as 120s or 5min",
    "path": "a path or URL without spaces",
    "java_opts": "JVM options such as -Dkey=value -XX:+UseG1GC",
    "word": "a word such as nvidia.com",
}

ENV_NAME_RE = re.compile(r"^[A-Z_][A-Z0-9_]{0,63}$")
# Set by Sparkdeck for every executor; an admin value would break TFoS or the loopback binding.
PROTECTED_ENV = MANAGED_ENV | {
    "CUDA_VISIBLE_DEVICES",  # TFoS sets it from the GPUs Spark assigned
    "LD_PRELOAD",
    "PYTHONPATH",
}


def _valid(kind: str, value: str) -> bool:
    if kind == "bool":
        return value in ("true", "false")
    if kind == "int":
        return value.isdigit() and int(value) >= 1
    if kind == "ratio":
        try:
            return 0.0 <= float(value) <= 1.0
        except ValueError:
            return False
    if kind == "size":
        return bool(SIZE_RE.match(value))
    if kind == "duration":
        return bool(DURATION_RE.match(value))
    if kind == "path":
        return bool(PATH_RE.match(value))
    if kind == "java_opts":
        return bool(JAVA_OPTS_RE.match(value))
    if kind == "word":
        return bool(re.match(r"^[\w.-]+$", value))
    raise ValueError(kind)


def normalise(value) -> str:
    """JSON value -> the string Spark gets (JSON true -> "true", 4 -> "4")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip()


def check_conf(conf) -> list[str]:
    """Problems with an extra-conf mapping (empty list = fine)."""
    if not isinstance(conf, dict):
        return ["Extra Spark settings must be a JSON object of key: value."]
    problems = []
    for key, raw in conf.items():
        kind = ALLOWED.get(key)
        if kind is None:
            problems.append(f"{key} is not an allowed extra setting (allowed: {', '.join(sorted(ALLOWED))}).")
            continue
        if isinstance(raw, (dict, list)) or raw is None:
            problems.append(f"{key} must be {EXPLAIN[kind]}.")
            continue
        if not _valid(kind, normalise(raw)):
            problems.append(f"{key} must be {EXPLAIN[kind]}, not {raw!r}.")
    return problems


def check_env(env) -> list[str]:
    if not isinstance(env, dict):
        return ["Executor environment must be a JSON object of NAME: value."]
    problems = []
    for name, value in env.items():
        if not ENV_NAME_RE.match(name):
            problems.append(f"{name!r} is not an environment variable name (A-Z, 0-9, _).")
        elif name in PROTECTED_ENV:
            problems.append(f"{name} is set by Sparkdeck and cannot be overridden.")
        elif not isinstance(value, (str, int, float)) or isinstance(value, bool) or "\n" in str(value):
            problems.append(f"{name} must be a single-line string or number.")
    return problems


def as_strings(mapping: dict) -> dict[str, str]:
    return {k: normalise(v) for k, v in mapping.items()}
