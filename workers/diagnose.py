"""Why a run hangs or fails, in plain words: the watchdog's recognition rules (issue 8).

Pure and Django-free. webapp/runs/watchdog.py gathers an Observation (tails of the driver log and of
each executor's stderr, the driver UI's executor list, the master's entry for the application) and
stores what diagnose() returns on the run. Each rule looks at one kind of trouble and returns a
Diagnosis or None; the first rule that matches wins, ordered so that a root cause beats its
consequences (an executor killed also fails its task; no executors also means no reservations).

Wording matched (copied from the sources' log statements):
- TFoS reservation.py:        "waiting for 2 reservations" (every second), "all reservations completed"
- TFoS TFSparkNode.py:        "Timeout while feeding partition"
- Spark TaskSchedulerImpl:    "Initial job has not accepted any resources; check your cluster UI ..."
- Spark TaskSetManager:       "Lost task 0.0 in stage 0.0 (TID 0) (host executor 0): ExecutorLostFailure
                               (executor 0 exited caused by one of the running tasks) Reason: Command exited
                               with code 137"
- Spark TaskSchedulerImpl:    "Lost executor 0 on 127.0.0.1: Command exited with code 137"
- Spark StandaloneSchedulerBackend: "Executor app-.../0 removed: Command exited with code 137"
- Spark Executor:             "ERROR Executor: Exception in task 0.0 in stage 0.0 (TID 0)" then
                               "org.apache.spark.api.python.PythonException: ... Traceback (most recent call last):"
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime

MAX_EVIDENCE_LINES = 12
MAX_LINE = 300


@dataclass
class Limits:
    """How long a condition must last before it is a diagnosis (seconds)."""

    # TFoS waiting for its reservations this long is a diagnosis. A healthy 2-executor run on 2 busy
    # cores waited 14 s (measured), so: 20 s when the missing executors cannot come (the application
    # asked for fewer, or Spark granted fewer cores than they need), 45 s when Spark granted them but
    # they did not register yet (slow JVM start) or the driver UI did not answer, 90 s when every
    # executor registered but a TF node did not report.
    reservations_short: float = 20.0
    reservations_unknown: float = 45.0
    reservations_all_registered: float = 90.0
    no_resources: float = 10.0  # application WAITING with no cores granted


@dataclass
class Asked:
    """What the run asked Spark for."""

    executors: int = 0
    cores: int = 1
    memory_mb: int = 0
    gpus: int = 0


@dataclass
class Observation:
    driver_log: str = ""  # tail of driver.log (spark-submit's stdout and stderr)
    executor_logs: dict[str, str] = field(default_factory=dict)  # executor id -> tail of its stderr
    executors: list[dict] | None = None  # Spark REST <ui>/api/v1/applications/<id>/allexecutors; None: unknown
    master_app: dict | None = None  # the application's entry in the standalone master's /json/; None: unknown
    workers: list[dict] | None = None  # the master's workers; None: unknown
    cluster_size: int = 0  # TF nodes TFoS waits for
    asked: Asked | None = None
    reservation_timeout: int | None = None  # the cluster's timeouts.reservation (TFoS waits that long)
    feed_timeout: int | None = None
    driver_gone: str | None = None  # the backend found the driver process gone: its reason
    now: float = field(default_factory=time.time)


@dataclass
class Diagnosis:
    code: str  # reservations | no_resources | feed_timeout | exception | executor_lost | driver_gone
    title: str  # one line, plain words
    cause: str  # what happened, plain words
    evidence: list[str]  # the few log lines that prove it
    advice: str  # what to change
    fatal: bool  # the run cannot recover (no point waiting)
    first_seen: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


# --- helpers ------------------------------------------------------------------------------------


def _clip(line: str) -> str:
    line = line.rstrip()
    return line if len(line) <= MAX_LINE else line[: MAX_LINE - 1] + "…"


def _evidence(lines) -> list[str]:
    out = []
    for line in lines:
        if line and line.strip() and _clip(line) not in out:
            out.append(_clip(line))
    return out[:MAX_EVIDENCE_LINES]


def _lines(text: str) -> list[str]:
    return (text or "").splitlines()


def _active_executors(executors: list[dict] | None) -> int | None:
    if executors is None:
        return None
    return sum(1 for e in executors if str(e.get("id")) != "driver" and e.get("isActive", True))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


# --- driver gone --------------------------------------------------------------------------------


def driver_gone(obs: Observation, limits: Limits) -> Diagnosis | None:
    if not obs.driver_gone:
        return None
    tail = [ln for ln in _lines(obs.driver_log) if ln.strip()][-10:]
    return Diagnosis(
        code="driver_gone",
        title="The driver process is gone",
        cause=(
            f"The spark-submit process that runs the driver ended without an exit code ({obs.driver_gone}): "
            "it was killed, or its host restarted. Without its driver the application cannot finish."
        ),
        evidence=_evidence(["(last lines of the driver log)", *tail] if tail else ["(the driver log is empty)"]),
        advice=(
            "Resubmit the run. If it happens again, look at the host that runs the Sparkdeck worker: a driver "
            "killed by the out-of-memory killer shows in `dmesg`; a restarted worker host kills its drivers."
        ),
        fatal=True,
        first_seen=obs.now,
    )


# --- executor lost ------------------------------------------------------------------------------

_LOST_FAILURE = re.compile(r"ExecutorLostFailure \(executor (\S+) exited ([^)]*)\)(?: Reason: (.*))?")
_LOST_EXECUTOR = re.compile(r"Lost executor (\S+) on ([^:\s]+): (.*)")
_REMOVED = re.compile(r"Executor app-[\w-]+/(\d+) removed: (.*)")
_OOM = re.compile(r"java\.lang\.OutOfMemoryError(?::\s*(.*))?")
_EXIT_CODE = re.compile(r"exited with code (\d+)")


def _exit_words(reason: str) -> str:
    m = _EXIT_CODE.search(reason or "")
    code = int(m.group(1)) if m else None
    if "OutOfMemoryError" in (reason or ""):
        return "its JVM ran out of memory (java.lang.OutOfMemoryError)"
    if code == 137:
        return "it was killed (exit code 137 = SIGKILL: the out-of-memory killer, or someone killed the process)"
    if code == 143:
        return "it was terminated (exit code 143 = SIGTERM)"
    if code == 52:
        return "its JVM ran out of memory (exit code 52)"
    if "exceeding memory limits" in (reason or ""):  # YARN's words
        return "YARN killed it for using more memory than it asked for (exceeding memory limits)"
    if "heartbeat" in (reason or "").lower():
        return "it stopped answering heartbeats (host overloaded, network trouble or a long GC pause)"
    if code is not None:
        return f"its process exited with code {code}"
    return (reason or "it disappeared").strip().rstrip(".")


def executor_lost(obs: Observation, limits: Limits) -> Diagnosis | None:
    evidence, executor, reason = [], None, ""
    seen = set()
    for line in _lines(obs.driver_log):
        for rx in (_REMOVED, _LOST_EXECUTOR, _LOST_FAILURE):
            m = rx.search(line)
            if m:
                if rx not in seen:  # the first line of each kind; later ones repeat it inside other messages
                    seen.add(rx)
                    evidence.append(line)
                if executor is None:
                    executor = m.group(1)
                    reason = m.groups()[-1] or ""
                break
    for ex_id, text in sorted(obs.executor_logs.items()):
        for line in _lines(text):
            m = _OOM.search(line)
            if m:
                evidence.append(f"executor {ex_id}: {line.strip()}")
                if executor is None or "OutOfMemoryError" not in reason:
                    executor, reason = ex_id, f"java.lang.OutOfMemoryError: {m.group(1) or ''}"
                break
    if not evidence:
        for line in _lines(obs.driver_log):
            m = _OOM.search(line)
            if m:
                evidence.append(line)
                reason = f"java.lang.OutOfMemoryError: {m.group(1) or ''}"
                break
    for e in obs.executors or []:
        if str(e.get("id")) != "driver" and not e.get("isActive", True) and e.get("removeReason"):
            evidence.append(f"Spark REST API: executor {e['id']} removed: {e['removeReason']}")
            if executor is None:
                executor, reason = str(e["id"]), str(e["removeReason"])
    if not evidence:
        return None
    who = f"Executor {executor}" if executor is not None else "An executor"
    words = _exit_words(reason)
    memory = any(k in reason for k in ("OutOfMemoryError", "code 137", "code 52", "memory limits"))
    advice = "A TF node cannot rejoin a running TFoS cluster, so training cannot continue: resubmit the run. " + (
        "If memory was the cause (the out-of-memory killer's exit code is 137; `dmesg` on the worker host lists "
        "its kills), give executors more memory or lower batch_size."
        if memory
        else "If it happens again, look at the worker host (its Spark worker log, `dmesg`)."
    )
    return Diagnosis(
        code="executor_lost",
        title=f"{who} was lost: {words.split(' (')[0]}",
        cause=f"{who} of the application died while its task ran: {words}. Its TF node went with it.",
        evidence=_evidence(evidence),
        advice=advice,
        fatal=True,
        first_seen=obs.now,
    )


# --- feed timeout -------------------------------------------------------------------------------

# The raised exception ("Exception: Timeout while feeding partition"), not the source line quoted above it.
_FEED_TIMEOUT = re.compile(r"\w: Timeout while feeding partition")


def feed_timeout(obs: Observation, limits: Limits) -> Diagnosis | None:
    evidence = []
    for ex_id, text in sorted(obs.executor_logs.items()):
        lines = _lines(text)
        for i, line in enumerate(lines):
            if _FEED_TIMEOUT.search(line):
                task = next((ln for ln in reversed(lines[max(0, i - 40) : i]) if "Exception in task" in ln), None)
                evidence += [f"executor {ex_id}: {x.strip()}" for x in (task, line) if x]
                break
    for line in _lines(obs.driver_log):
        if _FEED_TIMEOUT.search(line):
            evidence.append(line)
            break
    if not evidence:
        return None
    limit = f" ({obs.feed_timeout} s)" if obs.feed_timeout else ""
    return Diagnosis(
        code="feed_timeout",
        title="Feeding data to TensorFlow timed out",
        cause=(
            "A Spark task handed a partition of the training data to its TF node, and the TF node did not take "
            f"it within the cluster's feed timeout{limit}: the TF node stopped reading (it failed, finished its "
            "steps early, or waits in an all-reduce for a peer that is gone)."
        ),
        evidence=_evidence(evidence),
        advice=(
            "Look in the executor logs for an error of the TF node first. If training is only slow (large "
            "batches, a busy cluster), raise the cluster's feed timeout; in SPARK input mode keep "
            "steps_per_epoch within one pass over the data, or use TENSORFLOW input mode."
        ),
        fatal=True,
        first_seen=obs.now,
    )


# --- Python exception ---------------------------------------------------------------------------

_TRACEBACK = "Traceback (most recent call last):"
_EXC_LINE = re.compile(r"^([A-Za-z_][\w.]*)(?::\s?(.*))?$")
_EXC_NAME = re.compile(r"(?:^|\.)(?:[A-Z]\w*(?:Error|Exception|Exit|Interrupt|Failed|Iteration)|Exception)$")
# Exceptions that only wrap the real one (py4j's Java call, the driver's own re-raise).
_WRAPPERS = ("py4j.", "Py4J", "RunFailed", "SystemExit", "KeyboardInterrupt", "org.", "java.")
# Lines that say a task (or the driver) died of the exception, not just printed it.
_TASK_FAILED = ("Exception in task", "Lost task", "Job aborted due to stage failure", "SPARKDECK_ERROR=")
_ADVICE = [
    (
        ("ResourceExhaustedError", "MemoryError", "OOM when allocating"),
        "TensorFlow ran out of memory: lower batch_size, use a smaller model, or give executors more memory.",
    ),
    (
        ("InvalidArgumentError",),
        "The data does not fit the model (labels outside the class range, or another input shape): check the "
        "dataset's classes and shape against the template.",
    ),
    (
        ("templates.py", "tf_keras", "keras"),
        "The model could not be built or trained with these settings: fix the hyperparameter or input shape the "
        "message names, then rerun.",
    ),
]
_DEFAULT_ADVICE = "Fix what the message says (the whole traceback is in the log named above) and rerun."


def _tracebacks(lines: list[str]):
    """(index of the exception line, exception line, frames) for every Python traceback in `lines`.
    JVM log lines may be interleaved: unindented lines that do not look like an exception are skipped."""
    for i, line in enumerate(lines):
        if _TRACEBACK not in line:
            continue
        if i > 0 and lines[i - 1].startswith("Exception ignored in"):
            continue  # printed at interpreter exit; failed nothing
        frames: list[list[str]] = []
        for j in range(i + 1, min(len(lines), i + 400)):
            cur = lines[j]
            if _TRACEBACK in cur:
                break
            text = cur.strip()
            if cur.startswith((" ", "\t")) or not text:
                if text.startswith("File "):
                    frames.append([text])
                elif frames and text and not set(text) <= set("^~ "):
                    frames[-1].append(text)
                continue
            m = _EXC_LINE.match(text)
            if m and _EXC_NAME.search(m.group(1)):
                yield j, _inner_message(lines, j, text), frames
                break


def _inner_message(lines: list[str], j: int, exc: str) -> str:
    """tf_keras reports errors in traced code as "ValueError: in user code:" followed by indented frames
    and the real "ValueError: Input 0 of layer ..." line: return that one."""
    if not exc.endswith(":"):
        return exc
    inner = None
    for cur in lines[j + 1 : j + 80]:
        if cur.strip() and not cur.startswith((" ", "\t")):
            break
        m = _EXC_LINE.match(cur.strip())
        if m and _EXC_NAME.search(m.group(1)) and m.group(2):
            inner = cur.strip()
    return inner or exc


def _last_exception(lines: list[str]):
    """(exception line, frames) of the newest traceback that is not a wrapper, or None."""
    best = None
    for _j, exc, frames in _tracebacks(lines):
        if not _EXC_LINE.match(exc).group(1).startswith(_WRAPPERS):
            best = (exc, frames)
    return best


def exception(obs: Observation, limits: Limits) -> Diagnosis | None:
    # Executors first: the driver log only relays their tracebacks (inside "Lost task" lines).
    sources = [(f"executor {ex_id}", _lines(text)) for ex_id, text in sorted(obs.executor_logs.items())]
    sources.append(("the driver", _lines(obs.driver_log)))
    for source, lines in sources:
        marker = next((ln for ln in lines if any(m in ln for m in _TASK_FAILED)), None)
        if marker is None:
            continue  # a traceback that failed no task (a warning, a retried call) is no diagnosis
        found = _last_exception(lines)
        if found is None:
            continue
        exc, frames = found
        name = _EXC_LINE.match(exc).group(1).rsplit(".", 1)[-1]
        where = " ".join(" ".join(f) for f in frames[-3:])
        advice = next((text for keys, text in _ADVICE if any(k in exc or k in where for k in keys)), _DEFAULT_ADVICE)
        evidence = [f"{source}: {marker.strip()}", *(f"  {ln}" for frame in frames[-3:] for ln in frame[:2]), exc]
        return Diagnosis(
            code="exception",
            title=f"Training failed with {name} on {source}",
            cause=f"The training code raised an error on {source}: {exc}",
            evidence=_evidence(evidence),
            advice=advice,
            fatal=True,
            first_seen=obs.now,
        )
    return None


# --- no resources -------------------------------------------------------------------------------

_NO_RESOURCES = "Initial job has not accepted any resources"


def _gpus(resources) -> int:
    return len(((resources or {}).get("gpu") or {}).get("addresses") or [])


def _asked(obs: Observation) -> Asked:
    asked = obs.asked or Asked()
    app = obs.master_app or {}
    memory = asked.memory_mb or int(app.get("memoryperexecutor") or 0)
    gpus = asked.gpus
    if not gpus:
        for r in app.get("resourcesperexecutor") or []:
            if r.get("name") == "gpu":
                gpus = int(r.get("amount") or 0)
    return Asked(executors=asked.executors or obs.cluster_size, cores=asked.cores or 1, memory_mb=memory, gpus=gpus)


def _why_no_executor(obs: Observation, asked: Asked) -> tuple[str, str, str]:
    """(short title part, cause, advice) from the workers the master lists."""
    alive = [w for w in obs.workers or [] if w.get("state") == "ALIVE"]
    want = f"{_plural(asked.cores, 'core')}, {asked.memory_mb} MB" + (
        f", {_plural(asked.gpus, 'GPU')}" if asked.gpus else ""
    )
    if obs.workers is not None and not alive:
        return (
            "the cluster has no live workers",
            f"Each executor asks for {want}, but the Spark master lists no live worker.",
            "Start the cluster's workers (or ask an admin to), then resubmit.",
        )
    if not alive:
        return (
            "the cluster has not granted any",
            f"Each executor asks for {want}; the Spark master has granted no executor yet.",
            "Check the cluster's web UI for live workers with that much free memory and cores; ask for less per "
            "executor, or wait for other applications to finish.",
        )
    most_mem = max(int(w.get("memory") or 0) for w in alive)
    most_cores = max(int(w.get("cores") or 0) for w in alive)
    most_gpus = max(_gpus(w.get("resources")) for w in alive)
    short = []
    if asked.memory_mb > most_mem:
        short.append(("memory", f"{asked.memory_mb} MB of memory", f"the largest worker has {most_mem} MB"))
    if asked.cores > most_cores:
        short.append(("cores", _plural(asked.cores, "core"), f"the largest worker has {_plural(most_cores, 'core')}"))
    if asked.gpus > most_gpus:
        short.append(("GPUs", _plural(asked.gpus, "GPU"), f"the most any worker has is {most_gpus}"))
    if short:
        what = " and ".join(s[1] for s in short)
        limits = "; ".join(s[2] for s in short)
        fixes = {
            "memory": f"executor memory at most {most_mem} MB",
            "cores": f"at most {_plural(most_cores, 'core')} per executor",
            "GPUs": f"at most {most_gpus} GPU(s) per executor" if most_gpus else "no GPUs",
        }
        return (
            f"no worker has {what}",
            f"Each executor asks for {want}, but no live worker can ever host one: {limits}. Spark waits for "
            "such a worker forever.",
            "Ask for " + " and ".join(fixes[s[0]] for s in short) + ", or add workers that large to the cluster.",
        )
    free_cores = sum(int(w.get("coresfree") or 0) for w in alive)
    most_free_mem = max(int(w.get("memoryfree") or 0) for w in alive)
    return (
        "the cluster is busy",
        f"Each executor asks for {want}. Workers that large exist, but other applications hold them: "
        f"{_plural(free_cores, 'core')} free in all, at most {most_free_mem} MB free on one worker.",
        "Wait for the other applications to finish (the queue normally prevents this), or cancel and resubmit "
        "with fewer or smaller executors.",
    )


def _worker_lines(obs: Observation) -> list[str]:
    out = []
    for w in (obs.workers or [])[:6]:
        gpus = _gpus(w.get("resources"))
        out.append(
            f"worker {w.get('host')}:{w.get('port')} {w.get('state')}: {w.get('cores')} cores "
            f"({w.get('coresfree')} free), {w.get('memory')} MB ({w.get('memoryfree')} MB free)"
            + (f", {gpus} GPUs ({_gpus(w.get('resourcesfree'))} free)" if gpus else "")
        )
    return out


def no_resources(obs: Observation, limits: Limits) -> Diagnosis | None:
    app = obs.master_app
    warned = [ln for ln in _lines(obs.driver_log) if _NO_RESOURCES in ln]
    registered = _active_executors(obs.executors)
    if registered:
        return None  # some executor runs: not this (fewer than needed is the reservations rule)
    waiting = None
    if app is not None:
        granted = int(app.get("cores") or 0)
        if granted > 0:
            return None
        age = float(app.get("duration") or 0) / 1000.0
        if app.get("state") == "WAITING" and age >= limits.no_resources:
            waiting = age
    if waiting is None and not warned:
        return None
    asked = _asked(obs)
    short, cause, advice = _why_no_executor(obs, asked)
    evidence = warned[-1:]
    if app is not None:
        evidence.append(
            f"Spark master: {app.get('id')} {app.get('state')}, {app.get('cores', 0)} cores granted after "
            f"{float(app.get('duration') or 0) / 1000:.0f} s; asks {asked.memory_mb} MB per executor"
        )
    evidence += _worker_lines(obs)
    return Diagnosis(
        code="no_resources",
        title=f"No executor could start: {short}",
        cause=cause,
        evidence=_evidence(evidence),
        advice=advice,
        fatal=False,
        first_seen=obs.now,
    )


# --- reservations -------------------------------------------------------------------------------

_WAITING = re.compile(r"waiting for (\d+) reservations")
_TFOS_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}),(\d{3})")


def _tfos_time(line: str) -> float | None:
    m = _TFOS_TIME.match(line)
    if not m:
        return None
    # Local wall time without a zone: only differences between two such lines are used.
    return datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S").timestamp() + int(m.group(2)) / 1000.0


def pending_reservations(driver_log: str) -> tuple[int, float, list[str]] | None:
    """(TF nodes still missing, seconds TFoS has waited, the first and last waiting lines), or None
    when TFoS is not waiting for reservations now."""
    streak: list[str] = []
    for line in _lines(driver_log):
        if "Reserving TFSparkNodes" in line or "all reservations completed" in line:
            streak = []
        elif _WAITING.search(line):
            streak.append(line)
    if not streak:
        return None
    first, last = _tfos_time(streak[0]), _tfos_time(streak[-1])
    waited = last - first if first is not None and last is not None else float(len(streak) - 1)
    missing = int(_WAITING.search(streak[-1]).group(1))
    return missing, waited, [streak[0], streak[-1]] if len(streak) > 1 else streak


def reservations(obs: Observation, limits: Limits) -> Diagnosis | None:
    pending = pending_reservations(obs.driver_log)
    if pending is None:
        return None
    missing, waited, lines = pending
    size = obs.cluster_size or missing
    registered = _active_executors(obs.executors)
    app = obs.master_app
    asked = _asked(obs)
    granted = int(app.get("cores") or 0) if app is not None else None
    # The missing executors cannot come: the run asked for fewer, or the master granted fewer cores.
    too_few_asked = 0 < asked.executors < size
    too_few_granted = granted is not None and granted < size * asked.cores
    if registered is not None and registered >= size:
        limit = limits.reservations_all_registered
    elif too_few_asked or too_few_granted:
        limit = limits.reservations_short
    else:
        limit = limits.reservations_unknown
    if waited < limit:
        return None
    joined = max(0, size - missing)
    timeout = f" TFoS would wait for them until timeouts.reservation ({obs.reservation_timeout} s)." * bool(
        obs.reservation_timeout
    )
    evidence = [*lines, f"(TFoS has waited {waited:.0f} s)"]
    if registered is not None:
        evidence.append(f"Spark REST API: {_plural(registered, 'executor')} registered, {size} TF nodes wanted")
    if app is not None:
        evidence.append(f"Spark master: {app.get('id')} {app.get('state')}, {granted} cores granted")
    evidence += _worker_lines(obs)[:3]
    if too_few_asked or (registered is not None and registered < size):
        joined_executors = registered if registered is not None else asked.executors
        title = f"Only {joined_executors} of {size} executors joined the TF cluster"
        if too_few_asked:
            cause = (
                f"TFoS starts one TF node per executor and waits for {size}, but the application asked Spark for "
                f"{_plural(asked.executors, 'executor')}: the missing reservations can never arrive."
            )
            advice = f"Run {size} executors for {size} TF nodes (one TF node per executor), or fewer TF nodes."
        else:
            room = f" (Spark granted {_plural(granted, 'core')})" if granted is not None else ""
            cause = (
                f"TFoS waits for {size} TF nodes, one per executor, but only "
                f"{_plural(joined_executors, 'executor')} registered{room}: the cluster has no room for the "
                "others, or they failed to start."
            )
            advice = (
                "Free or add workers so that every executor can start, or ask for fewer executors; the executor "
                "logs and the cluster's web UI show executors that failed to start."
            )
    else:
        title = f"The TF cluster did not form: {joined} of {size} TF nodes reserved"
        cause = (
            f"TFoS has waited {waited:.0f} s for {size} TF nodes to report, and {_plural(missing, 'node')} still "
            "did not: their tasks did not start or are stuck before TensorFlow started."
        )
        advice = (
            "Look at the executor logs for an error before training started; make sure each executor has exactly "
            "one task slot (executor cores = task cpus) and that executors can reach the driver."
        )
    return Diagnosis(
        code="reservations",
        title=title,
        cause=cause + timeout,
        evidence=_evidence(evidence),
        advice=advice,
        fatal=False,
        first_seen=obs.now,
    )


# Root causes first: a lost executor also fails its task (exception) and stops its feed; an application
# without executors also waits for its reservations.
RULES = (driver_gone, executor_lost, feed_timeout, exception, no_resources, reservations)


def diagnose(obs: Observation, limits: Limits | None = None) -> Diagnosis | None:
    """The first rule's diagnosis that matches `obs`, or None: nothing is wrong that we know of."""
    limits = limits or Limits()
    for rule in RULES:
        found = rule(obs, limits)
        if found is not None:
            return found
    return None
