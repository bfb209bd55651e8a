"""Why a run hangs or fails, in plain words: the watchdog's recognition rules.

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
- Spark PythonRunner:         "org.apache.spark.SparkException: Python worker exited unexpectedly (crashed)"
- TFoS TFSparkNode.py:        "TFSparkNode.reserve: {'executor_id': 0, 'host': ..., 'job_name': 'chief', ...}"
- TensorFlow (a peer gone):   "UnavailableError: ... Collective ops is aborted by: failed to connect to all
                               addresses; ... ipv4:127.0.0.1:43133: Failed to connect to remote host: Connection
                               refused", "The following tasks are unhealthy (stopped sending heartbeats):"
Real logs of these: tests/workers/recordings/.
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
    code: str  # reservations | no_resources | feed_timeout | exception | executor_lost | worker_died | driver_gone
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


# --- a TF node's Python worker died -------------------------------------------------------------

# Spark saw the worker's pipe close ("Lost task 1.0 in stage 0.0 (TID 1) (127.0.0.1 executor 1):
# org.apache.spark.SparkException: Python worker exited unexpectedly (crashed). Consider setting ...").
_CRASHED = "org.apache.spark.SparkException: Python worker exited unexpectedly"
_LOST_TASK = re.compile(r"Lost task [\d.]+ in stage [\d.]+ \(TID \d+\) \((\S+) executor (\S+)\): ")
# TFoS's node table: "{'executor_id': 0, 'host': '127.0.0.1', 'job_name': 'chief', 'task_index': 0, 'port': 43133,
# ...}", logged by the driver once all nodes reserved, and by each node for itself ("TFSparkNode.reserve: {...}").
_NODE_KEYS = {
    k: re.compile(rf"'{k}': '?([^,']*)'?[,}}]") for k in ("executor_id", "host", "job_name", "task_index", "port")
}
_NODE_RESERVED = "TFSparkNode.reserve: {"
# Which Spark executor ran TFoS's node task N: the node tasks are the partitions of TFoS's node RDD, one per node.
_NODE_TASK = re.compile(
    r"Starting task (\d+)\.\d+ in stage [\d.]+ \(TID \d+\) \([^,]+, ?executor (\S+?), partition (\d+)"
)
# The peer a TF node could not reach: gRPC's address, or the TF task it called.
_PEER_ADDR = re.compile(r"ipv[46]:\[?([^\s\]]+?)\]?:(\d+)\b")
_REMOTE_TARGET = re.compile(r"remote target /job:(\w+)/replica:\d+/task:(\d+)")
# TF's coordination service, when a peer went silent: "... The following tasks are unhealthy (stopped sending
# heartbeats):\n/job:worker/replica:0/task:0\nThe tasks have crashed. ..."
_UNHEALTHY = re.compile(r"stopped sending heartbeats\):\s*/job:(\w+)/replica:\d+/task:(\d+)")
_ALIVE = ("[sparkdeck]", "SPARKDECK_STEP")  # what a training TF node prints while it lives


@dataclass
class TFNode:
    node: int  # TFoS's executor_id: the node's index, not Spark's executor id
    host: str
    job: str
    task: int
    port: int
    executor: str | None = None  # the Spark executor that ran it, if the logs say

    @property
    def name(self) -> str:
        return f"{self.job}:{self.task}"


def _node(line: str) -> TFNode | None:
    found = {k: rx.search(line) for k, rx in _NODE_KEYS.items()}
    if not all(found.values()) or not found["executor_id"].group(1).isdigit():
        return None
    try:
        return TFNode(
            node=int(found["executor_id"].group(1)),
            host=found["host"].group(1),
            job=found["job_name"].group(1),
            task=int(found["task_index"].group(1)),
            port=int(found["port"].group(1)),
        )
    except ValueError:
        return None


def tf_nodes(driver_log: str, executor_logs: dict[str, str]) -> dict[int, TFNode]:
    """TFoS's nodes by index, each with the Spark executor that ran it: from each executor's own
    reservation line, else from the driver's node table and the executors its node tasks started on."""
    nodes: dict[int, TFNode] = {}
    started: dict[int, str] = {}
    for line in _lines(driver_log):
        m = _NODE_TASK.search(line)
        if m and m.group(1) == m.group(3) and not nodes:  # node tasks start before the table is logged
            started[int(m.group(3))] = m.group(2)
            continue
        node = _node(line) if "'executor_id': " in line and _NODE_RESERVED not in line else None
        if node is not None:
            node.executor = started.get(node.node)
            nodes.setdefault(node.node, node)
    for ex_id, text in executor_logs.items():
        for line in _lines(text):
            if _NODE_RESERVED in line:
                node = _node(line)
                if node is not None:
                    node.executor = ex_id
                    nodes[node.node] = node
                break
    return nodes


def _peer(lines: list[str], j: int, nodes: dict[int, TFNode]) -> tuple[TFNode | None, str, str]:
    """The TF node the exception at j could not reach, how the error names it, and the line that does."""
    text = "\n".join(_after(lines, j))
    for m in _PEER_ADDR.finditer(text):
        host, port = m.group(1), int(m.group(2))
        same = [n for n in nodes.values() if n.port == port]
        match = [n for n in same if n.host == host] or (same if len(same) == 1 else [])
        if match:
            return match[0], f"{host}:{port}", _line_of(text, m.start())
    for rx, how in ((_UNHEALTHY, "{} stopped sending heartbeats"), (_REMOTE_TARGET, "{}")):
        for m in rx.finditer(text):
            match = [n for n in nodes.values() if n.job == m.group(1) and n.task == int(m.group(2))]
            if match:
                return match[0], how.format(f"/job:{m.group(1)}/task:{m.group(2)}"), _line_of(text, m.start())
    m = _PEER_ADDR.search(text)
    return (None, f"{m.group(1)}:{m.group(2)}", _line_of(text, m.start())) if m else (None, "", "")


def _line_of(text: str, at: int) -> str:
    return text[text.rfind("\n", 0, at) + 1 :].split("\n", 1)[0].strip()


def _failed_by_itself(executor: str, obs: Observation) -> bool:
    """Whether the executor's task failed of an error of its own (a root cause, not a peer's death)."""
    lines = _lines(obs.executor_logs.get(executor, ""))
    if any("Exception in task" in ln for ln in lines):
        if any(not gone for *_x, gone in _exceptions(lines)):
            return True
    driver = _lines(obs.driver_log)
    for i, _j, _exc, _frames, gone in _exceptions(driver):
        m = _LOST_TASK.search(driver[i])
        if m and m.group(2) == executor and not gone:
            return True
    return False


def _crashed(obs: Observation) -> tuple[str, list[str]] | None:
    """(executor, evidence) of the first Python worker Spark saw exit unexpectedly."""
    for line in _lines(obs.driver_log):
        at = line.find(_CRASHED)
        if at >= 0:
            # the "Lost task" just before the message: Spark nests one task's failure in another's
            lost = list(_LOST_TASK.finditer(line[:at]))
            if lost:
                return lost[-1].group(2), [line]
    for ex_id, text in sorted(obs.executor_logs.items()):
        lines = _lines(text)
        for k, line in enumerate(lines):
            if line.startswith(_CRASHED):
                task = next((ln for ln in reversed(lines[max(0, k - 3) : k]) if "Exception in task" in ln), None)
                return ex_id, [f"executor {ex_id}: {x.strip()}" for x in (task, line) if x]
    return None


def _last_alive(executor: str | None, obs: Observation) -> list[str]:
    lines = [ln for ln in _lines(obs.executor_logs.get(executor or "", "")) if any(a in ln for a in _ALIVE)]
    return [f"executor {executor}: {lines[-1].strip()} (its last training line)"] if lines else []


def _task_line(lines: list[str], i: int) -> tuple[str | None, str]:
    """(executor, line) of the task failure a traceback starting at i belongs to: the driver's
    "Lost task ... (host executor N): " (cut there), or an executor's "Exception in task" (TFoS prints the
    traceback once itself before Spark logs the task's failure)."""
    m = _LOST_TASK.search(lines[i])
    if m:
        return m.group(2), lines[i][: m.end()].rstrip(": ")
    return None, next((ln for ln in lines if "Exception in task" in ln), "")


def _peer_failure(obs: Observation, nodes: dict[int, TFNode]):
    """(who failed, the node it could not reach or None, the address, evidence lines) of the first task
    that failed because a peer TF node was gone; executors' own logs first, then the driver's relay."""
    sources = [(ex_id, _lines(text)) for ex_id, text in sorted(obs.executor_logs.items())]
    sources.append((None, _lines(obs.driver_log)))
    fallback = None
    for ex_id, lines in sources:
        if not any(any(m in ln for m in _TASK_FAILED) for ln in lines):
            continue  # only failures: a cancelled executor's log quotes the error it was cancelled for
        for i, j, exc, _frames, gone in _exceptions(lines):
            if not gone:
                continue
            peer, where, said = _peer(lines, j, nodes)
            if not where:
                continue
            relayed, task = _task_line(lines, i)
            who = f"executor {ex_id if ex_id is not None else relayed or '?'}"
            prefix = f"{who}: " if ex_id is not None else ""
            found = (who, peer, where, exc, [prefix + x.strip() for x in (task, exc, said) if x and x.strip()])
            if peer is not None:
                return found
            fallback = fallback or found
    return fallback


def worker_died(obs: Observation, limits: Limits) -> Diagnosis | None:
    """A TF node's Python process died while its executor's JVM lived (killed by a signal, or crashed):
    from Spark's "Python worker exited unexpectedly", or from the peers' errors that name its address."""
    nodes = tf_nodes(obs.driver_log, obs.executor_logs)
    crashed = _crashed(obs)
    if crashed is not None:
        executor, evidence = crashed
        node = next((n for n in nodes.values() if n.executor == executor), None)
        seen = "Spark saw its Python worker exit unexpectedly (the pipe to it closed)"
        consequence = ""
    else:
        failure = _peer_failure(obs, nodes)
        if failure is None:
            return None
        who, node, where, exc, evidence = failure
        executor = node.executor if node is not None else None
        if executor is not None and _failed_by_itself(executor, obs):
            return None  # it raised an error of its own: the exception rule names it
        if executor is None and any(not gone for *_x, gone in _exceptions(_lines(obs.driver_log))):
            return None  # a root cause elsewhere: the exception rule names it
        if node is not None:
            evidence.append(f"TF node {node.name} ({node.host}:{node.port}) ran on executor {executor or '?'}")
        seen = "its TF node stopped answering, and nothing in its log says why (no error of its own)"
        consequence = (
            f" {who[0].upper()}{who[1:]} then failed because it could not reach it ({where}): "
            f"{_exc_name(exc).rsplit('.', 1)[-1]}, a consequence, not the cause."
        )
    evidence = [*evidence, *_last_alive(executor, obs)]
    whose = f"Executor {executor}'s" if executor is not None else "A TF node's"
    what = f"TF node {node.name}" if node is not None else "training"
    where_ = f"executor {executor}" if executor is not None else "one executor"
    return Diagnosis(
        code="worker_died",
        title=f"{whose} Python worker died: it was killed or crashed",
        cause=(
            f"The Python process running {what} on {where_} ended during training: {seen}. A process killed by "
            "a signal (SIGKILL: the out-of-memory killer, or someone killed it) or one that crashed leaves no "
            "error behind, and Spark's logs do not say who killed it." + consequence
        ),
        evidence=_evidence(evidence),
        advice=(
            "Nothing in the run's settings or model caused this: resubmit the run, it may well succeed. If it "
            "happens again, look at the host of that executor: `dmesg` (or `journalctl -k`) lists the "
            "out-of-memory killer's kills; if memory was the cause, give executors more memory or run fewer of "
            "them per host."
        ),
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


# --- Python exceptions (one parser, also for the driver's failure reason) ------------------------

_TRACEBACK = "Traceback (most recent call last):"
# An exception line: "ValueError: x", "tensorflow...UnavailableError: Graph execution error:", and py4j's
# "py4j.protocol.Py4JJavaError" with a JVM log line glued to it ("...Py4JJavaError26/01/01 04:15:05 INFO ...").
_EXC_LINE = re.compile(
    r"^((?:[A-Za-z_]\w*\.)*(?:[A-Z]\w*?(?:Error|Exception|Exit|Interrupt|Failed|Iteration)|Exception))"
    r"(?![A-Za-z_])(?:$|:\s?(.*)$|(?=\d))"
)
# Exceptions that only wrap the real one (py4j's Java call, the driver's own re-raise).
_WRAPPERS = ("py4j.", "Py4J", "RunFailed", "SystemExit", "KeyboardInterrupt", "org.", "java.")
# Lines that say a task (or the driver) died of the exception, not just printed it.
_TASK_FAILED = ("Exception in task", "Lost task", "Job aborted due to stage failure", "SPARKDECK_ERROR=")
# What a TF node raises when a peer of its collective ops is gone: a consequence of the peer's death.
_PEER_GONE_NAMES = ("UnavailableError", "AbortedError", "CancelledError", "DeadlineExceededError")
_PEER_GONE_TEXT = (
    "Collective ops is aborted",
    "failed to connect to all addresses",
    "Socket closed",
    "Connection reset by peer",
    "Connection refused",
    "stopped sending heartbeats",
)
_PEER_ADVICE = (
    "This error is a consequence: another TF node of the run stopped answering (its process died, or its host "
    "is unreachable). It is not a problem with the model or its settings: find the executor that failed first "
    "(its log stops without an error of its own), then resubmit the run."
)
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


def _exc_name(exc: str) -> str:
    return _EXC_LINE.match(exc).group(1)


def _tracebacks(lines: list[str]):
    """(index of the "Traceback" line, index of the exception line, exception line, frames) for every Python
    traceback in `lines`. JVM log lines may be interleaved: unindented lines that do not look like an
    exception are skipped."""
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
            if _EXC_LINE.match(text):
                yield i, j, _inner_message(lines, j, text), frames
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
        if m and m.group(2):
            inner = cur.strip()
    return inner or exc


def _after(lines: list[str], j: int, limit: int = 150) -> list[str]:
    """The lines that go with the exception line at j (TF's gRPC details come ~50 lines below it)."""
    out = []
    for cur in lines[j : j + limit]:
        if out and _TRACEBACK in cur:
            break
        out.append(cur)
    return out


def peer_gone(exc: str, lines: list[str] = (), j: int = 0) -> bool:
    """Whether the exception says a peer TF node is gone (a consequence, not a cause)."""
    name = _exc_name(exc).rsplit(".", 1)[-1] if _EXC_LINE.match(exc) else ""
    text = "\n".join(_after(lines, j)) if lines else exc
    return name in _PEER_GONE_NAMES or any(t in text for t in _PEER_GONE_TEXT)


def _exceptions(lines: list[str]):
    """(traceback index, exception index, exception line, frames, peer_gone) of the non-wrapper tracebacks."""
    for i, j, exc, frames in _tracebacks(lines):
        if not _exc_name(exc).startswith(_WRAPPERS):
            yield i, j, exc, frames, peer_gone(exc, lines, j)


def traceback_error(lines: list[str]) -> tuple[int, str] | None:
    """(index, text) of the exception line of the last Python traceback, wrappers included: py4j's
    ": An error occurred while calling X." is replaced by the Java exception on the line after it."""
    last = None
    for _i, j, exc, _frames in _tracebacks(lines):
        last = (j, exc)
    if last is None:
        return None
    j, exc = last
    m = _EXC_LINE.match(exc)
    msgs = [f": {m.group(2)}"] if m.group(2) is not None else []
    msgs += [x.rstrip() for x in lines[j + 1 : j + 8] if x.startswith(": ")]
    msg = next((x for x in msgs if "An error occurred while calling" not in x), msgs[0] if msgs else "")
    return j, (m.group(1) + msg).rstrip()


def _log_time(line: str) -> float:
    """A Spark log line's "yy/MM/dd HH:mm:ss" as seconds, for ordering; inf when it has none."""
    m = re.search(r"(\d\d/\d\d/\d\d \d\d:\d\d:\d\d)", line or "")
    if not m:
        return float("inf")
    return datetime.strptime(m.group(1), "%y/%m/%d %H:%M:%S").timestamp()


def exception(obs: Observation, limits: Limits) -> Diagnosis | None:
    # Executors first: the driver log only relays their tracebacks (inside "Lost task" lines). A root
    # cause beats the errors it caused on the other TF nodes, then the one that failed first wins.
    sources = [(f"executor {ex_id}", _lines(text)) for ex_id, text in sorted(obs.executor_logs.items())]
    sources.append(("the driver", _lines(obs.driver_log)))
    found = []
    for order, (source, lines) in enumerate(sources):
        marker = next((ln for ln in lines if any(m in ln for m in _TASK_FAILED)), None)
        if marker is None:
            continue  # a traceback that failed no task (a warning, a retried call) is no diagnosis
        # the newest exception of the log, a root cause before a consequence
        picked = sorted(_exceptions(lines), key=lambda e: (e[4], -e[1]))
        if picked:
            _i, _j, exc, frames, consequence = picked[0]
            found.append(((consequence, _log_time(marker), order), source, marker, exc, frames))
    if not found:
        return None
    (consequence, _t, _o), source, marker, exc, frames = min(found, key=lambda f: f[0])
    name = _exc_name(exc).rsplit(".", 1)[-1]
    where = " ".join(" ".join(f) for f in frames[-3:])
    advice = (
        _PEER_ADVICE
        if consequence
        else next((text for keys, text in _ADVICE if any(k in exc or k in where for k in keys)), _DEFAULT_ADVICE)
    )
    evidence = [f"{source}: {marker.strip()}", *(f"  {ln}" for frame in frames[-3:] for ln in frame[:2]), exc]
    return Diagnosis(
        code="exception",
        # a consequence names the node that failed on it, not as the cause
        title=f"A TF node stopped answering: {source} failed on it with {name}"
        if consequence
        else f"Training failed with {name} on {source}",
        cause=f"The training code raised an error on {source}: {exc}",
        evidence=_evidence(evidence),
        advice=advice,
        fatal=True,
        first_seen=obs.now,
    )


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
    warned = []
    for ln in _lines(obs.driver_log):
        if "all reservations completed" in ln:
            warned = []  # executors ran since: an older warning is no finding (a busy start, not a stuck one)
        elif _NO_RESOURCES in ln:
            warned.append(ln)
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


# Root causes first: a lost executor also fails its task (exception) and stops its feed; a dead TF node's
# peers fail on it; an application without executors also waits for its reservations.
RULES = (driver_gone, executor_lost, worker_died, feed_timeout, exception, no_resources, reservations)


def diagnose(obs: Observation, limits: Limits | None = None) -> Diagnosis | None:
    """The first rule's diagnosis that matches `obs`, or None: nothing is wrong that we know of."""
    limits = limits or Limits()
    for rule in RULES:
        found = rule(obs, limits)
        if found is not None:
            return found
    return None


# --- the reason of a failed driver ----------------------------------------------------------------

_PY4J_WRAPPER = "An error occurred while calling"
# Diagnoses the driver's log alone can give, which say more than the driver's own last error when that
# is a peer's consequence or py4j's wrapper.
_DRIVER_RULES = (executor_lost, worker_died)


def failure_reason(lines: list[str], rc: int) -> tuple[str, str | None]:
    """(reason, detail) of a driver that exited with `rc`, from the tail of its log: the driver's
    SPARKDECK_ERROR, unless it only relays another node's death (then the executor whose process died,
    from the same log); else the Python exception; else the last exception-looking line; else the exit
    code."""
    error = None
    for i in range(len(lines) - 1, -1, -1):
        at = lines[i].find("SPARKDECK_ERROR=")
        if at >= 0:
            error = i, lines[i][at + len("SPARKDECK_ERROR=") :].strip()[:500]
            break
    if error is None or _PY4J_WRAPPER in error[1] or peer_gone(error[1]):
        obs = Observation(driver_log="\n".join(lines))
        found = next((d for d in (rule(obs, Limits()) for rule in _DRIVER_RULES) if d is not None), None)
        if found is not None:
            return found.title, "\n".join(found.evidence)
    if error is not None:
        i, text = error
        return text, "\n".join(lines[max(0, i - 8) : i + 1])
    found = traceback_error(lines)
    if found is None:
        found = next(((i, lines[i].strip()) for i in range(len(lines) - 1, -1, -1) if _EXC_LINE.match(lines[i])), None)
    if found:
        i, text = found
        return text[:500], "\n".join(lines[max(0, i - 8) : i + 3])
    tail = "\n".join(lines[-15:]) or None
    if rc > 128:
        return f"driver was killed by signal {rc - 128}", tail
    return f"driver exited with code {rc}", tail
