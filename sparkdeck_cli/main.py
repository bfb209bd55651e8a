"""`sparkdeck`: datasets and runs from a shell or a script, through the REST API (docs/api.md).

Output: what a script wants (an id, a path, a table, JSON) goes to stdout; progress and messages go
to stderr. Exit status 0 on success, 1 on an error or a failed/cancelled run or dataset, 2 on a usage
error, 130 when interrupted."""

import functools
import json
import os
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import click

from . import config
from .client import Api, ApiError, MultipartBody

TOKEN_PAGE = "/api/token/"
# Dataset statuses while the worker still has it; any other is where waiting ends.
DATASET_BUSY = ("UPLOADED", "CONVERTING")
END_GRACE_S = 1.0
WHAT = {"model": "model", "predictions": "predictions_csv", "tensorboard": "tensorboard"}


def info(message: str) -> None:
    click.echo(message, err=True)


class Group(click.Group):
    """Every user error is a one-line message and exit status 1, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (ApiError, config.ConfigError) as exc:
            raise click.ClickException(str(exc)) from None
        except BrokenPipeError:  # `sparkdeck runs logs 3 | head`: the reader left, as it may
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            ctx.exit(1)
        except OSError as exc:  # a local file: unreadable input, an unwritable output
            raise click.ClickException(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")) from None
        except KeyboardInterrupt:
            info("Interrupted.")
            ctx.exit(130)


def api_from_config() -> Api:
    settings = config.load()
    if not settings.url or not settings.token:
        raise config.ConfigError("not logged in: run `sparkdeck login` (or set SPARKDECK_URL and SPARKDECK_TOKEN).")
    return Api(settings.url, settings.token)


def pass_api(command):
    """The command gets the logged-in Api first (read when it runs, so --help needs no login)."""

    @functools.wraps(command)
    def with_api(*args, **kwargs):
        return command(api_from_config(), *args, **kwargs)

    return with_api


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
def cli():
    """Sparkdeck from the command line: upload datasets, submit and follow runs, download results.

    Log in once with `sparkdeck login`; SPARKDECK_URL and SPARKDECK_TOKEN override the saved login.
    Ids, paths and tables go to stdout, progress and messages to stderr."""


# ---------------------------------------------------------------- login


@cli.command()
@click.option("--url", help="The server, e.g. http://127.0.0.1:8000 (default: the saved one, or that).")
@click.option("--token", help="An API token (sdk_…); asked for when left out.")
def login(url, token):
    """Check an API token against the server and save both (mode 0600).

    Make a token in the browser: open API in Sparkdeck's top bar (/api/token/) and press Create token.
    The API cannot make tokens from a password, so there is no --username."""
    try:
        saved_url = config.load().url
    except config.ConfigError:  # an unreadable file is what this login replaces
        saved_url = None
    url = config.normalize_url(url or saved_url or config.DEFAULT_URL)
    if not token:
        info(f"Create a token at {url}{TOKEN_PAGE} (API in the top bar), then paste it here.")
        token = click.prompt("API token", hide_input=True, err=True).strip()
    try:
        Api(url, token).get("/api/clusters/")
    except ApiError as exc:
        if exc.status == 401:
            raise click.ClickException(
                f"{url} refused the token: make a new one at {url}{TOKEN_PAGE} and run `sparkdeck login` again."
            ) from None
        raise
    path = config.save(url, token)
    info(f"Logged in to {url}; saved to {path}.")
    for name in (config.URL_ENV, config.TOKEN_ENV):
        if name in os.environ:
            info(f"Note: {name} is set and overrides the saved value.")


# ---------------------------------------------------------------- datasets


@cli.group()
def datasets():
    """Upload and list datasets."""


@datasets.command("upload")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", help="Dataset name (default: the file's name without its extension).")
@click.option("--label-column", help="CSV/TSV/Parquet: the label column (server default: label).")
@click.option("--layout", type=click.Choice(["image", "sequence"]), help="How x is read (default: image).")
@click.option("--shape", help="e.g. 28x28, 28x28x3, 20x3 (default: inferred).")
@click.option("--x-key", help="NPZ: the features array (default: x).")
@click.option("--y-key", help="NPZ: the labels array (default: y).")
@click.option("--image-size", help="ZIP of images: HxW to bring them to (default: the most common).")
@click.option("--test-fraction", type=float, help="Held-out fraction, 0.01 to 0.9 (default 0.2).")
@click.option(
    "--test-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="The test split's own file."
)
@click.option("--team", help="Team id or slug (needed when you are in several teams).")
@click.option("--wait/--no-wait", default=False, help="Wait until the dataset is READY (or FAILED: exit 1).")
@click.option("--timeout", type=click.FloatRange(min=0), help="Give up waiting after this many seconds.")
@pass_api
def datasets_upload(api, file, name, label_column, layout, shape, x_key, y_key, image_size, test_fraction, **kw):
    """Upload FILE (NPZ, CSV/TSV, Parquet or a ZIP of images); prints the dataset's id."""
    fields = {
        "name": name or file.stem,
        "label_column": label_column,
        "layout": layout,
        "shape": shape,
        "x_key": x_key,
        "y_key": y_key,
        "image_size": image_size,
        "test_fraction": None if test_fraction is None else repr(test_fraction),
        "team": kw["team"],
    }
    files = {"file": file, **({"test_file": kw["test_file"]} if kw["test_file"] else {})}
    body = MultipartBody({k: v for k, v in fields.items() if v is not None}, files)
    with click.progressbar(length=len(body), label=f"Uploading {file.name}", file=sys.stderr) as bar:
        body.progress = bar.update
        ds = api.upload("/api/datasets/", body)
    info(f"Dataset {ds['id']} ({ds['name']}): {ds['status']}  {ds['url']}")
    if kw["wait"]:
        ds = wait_dataset(api, ds, kw["timeout"])
    click.echo(ds["id"])


def wait_dataset(api: Api, ds: dict, timeout: float | None, interval: float = 1.0) -> dict:
    deadline = None if timeout is None else time.monotonic() + timeout
    seen = ds["status"]
    while ds["status"] in DATASET_BUSY:
        if deadline is not None and time.monotonic() > deadline:
            raise click.ClickException(f"dataset {ds['id']} still {ds['status']} after {timeout:g} s.")
        time.sleep(interval)
        ds = api.get(ds["url"])
        if ds["status"] != seen:
            seen = ds["status"]
            info(f"Dataset {ds['id']}: {seen}")
    if ds["status"] != "READY":
        reason = ds.get("status_reason") or "no reason given"
        raise click.ClickException(f"dataset {ds['id']} {ds['status']}: {reason}")
    info(
        f"Dataset {ds['id']} READY: {ds.get('train_rows')} training / {ds.get('test_rows')} test rows, "
        f"{ds.get('num_classes')} classes, shape {ds.get('shape')}."
    )
    return ds


@datasets.command("list")
@click.option("--status", help="Statuses, comma-separated (e.g. ready,failed).")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")
@pass_api
def datasets_list(api, status, as_json):
    """Your teams' datasets, newest first."""
    items = collect(api, "/api/datasets/", {"status": status, "size": 500}, limit=0)
    if as_json:
        click.echo(json.dumps(items, indent=2))
        return
    rows = [
        (d["id"], d["status"], d.get("train_rows"), d.get("test_rows"), d.get("num_classes"), d["name"]) for d in items
    ]
    table(("ID", "STATUS", "TRAIN", "TEST", "CLASSES", "NAME"), rows)


# ---------------------------------------------------------------- runs


@cli.group()
def runs():
    """Submit, follow, list and download runs."""


def parse_sets(values: tuple[str, ...]) -> dict[str, str]:
    """--set name=value pairs; values go as given (the server reads them by the template's schema)."""
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise click.BadParameter(f"{item!r}: use name=value, e.g. epochs=5.", param_hint="--set")
        if key in out:
            raise click.BadParameter(f"{key} is set twice.", param_hint="--set")
        out[key] = value.strip()
    return out


def pick_cluster(api: Api) -> int:
    clusters = api.get("/api/clusters/")
    if len(clusters) == 1:
        return clusters[0]["id"]
    if not clusters:
        raise click.ClickException("the server has no enabled cluster.")
    names = ", ".join(f"{c['id']} ({c['name']})" for c in clusters)
    raise click.UsageError(f"pick a cluster with --cluster: {names}.")


@runs.command("submit")
@click.option("--dataset", type=click.IntRange(min=1), required=True, help="A READY dataset's id.")
@click.option("--template", required=True, help="A template key (GET /api/templates/ lists them).")
@click.option("--cluster", type=click.IntRange(min=1), help="Cluster id (default: the only one there is).")
@click.option("--set", "sets", multiple=True, metavar="NAME=VALUE", help="A hyperparameter; repeat for more.")
@click.option("--name", help="The run's name.")
@click.option("--executors", type=click.IntRange(min=1), help="Executors (TFoS cluster size; default 2).")
@click.option("--cores", type=click.IntRange(min=1), help="Cores per executor (default 1).")
@click.option("--memory", type=click.IntRange(min=1), help="Memory per executor in MB (default 2048).")
@click.option("--gpus", type=click.IntRange(min=0), help="GPUs per executor (default 0).")
@click.option("--input-mode", type=click.Choice(["tensorflow", "spark"]), help="TFoS input mode.")
@click.option("--team", help="Team id or slug (needed when you are in several teams).")
@click.option("--wait/--no-wait", default=False, help="Follow the run until it ends; exit 1 unless it SUCCEEDED.")
@click.option("--timeout", type=click.FloatRange(min=0), help="Give up waiting after this many seconds.")
@click.option("--interval", type=click.FloatRange(min=0.2), default=2.0, help="Seconds between polls while waiting.")
@pass_api
def runs_submit(api, dataset, template, cluster, sets, name, executors, cores, memory, gpus, input_mode, team, **kw):
    """Submit a run; prints its id (and, with --wait, its progress until it ends)."""
    body = {
        "dataset": dataset,
        "template": template,
        "cluster": cluster or pick_cluster(api),
        "hyperparameters": parse_sets(sets),
        "name": name,
        "num_executors": executors,
        "executor_cores": cores,
        "executor_memory_mb": memory,
        "gpus_per_executor": gpus,
        "input_mode": input_mode,
        "team": team,
    }
    run = api.post("/api/runs/", json={k: v for k, v in body.items() if v is not None})
    info(f"Run {run['id']} {run['status']}: {run['links']['page']}")
    click.echo(run["id"])
    sys.stdout.flush()  # a script reading the id learns it before the run ends
    if kw["wait"]:
        wait_run(api, run, kw["timeout"], kw["interval"])


@runs.command("wait")
@click.argument("run_id", type=click.IntRange(min=1))
@click.option("--timeout", type=click.FloatRange(min=0), help="Give up after this many seconds.")
@click.option("--interval", type=click.FloatRange(min=0.2), default=2.0, help="Seconds between polls.")
@pass_api
def runs_wait(api, run_id, timeout, interval):
    """Follow a run's progress until it ends; exit 1 unless it SUCCEEDED."""
    wait_run(api, api.get(f"/api/runs/{run_id}/"), timeout, interval)


class StatusLine:
    """One line of progress on stderr, rewritten in place on a terminal; elsewhere printed when it changes."""

    def __init__(self):
        self.tty = sys.stderr.isatty()
        self.last = ""

    def show(self, text: str) -> None:
        if text == self.last:
            return
        if self.tty:
            click.echo("\r\x1b[2K" + text, err=True, nl=False)
        else:
            info(text)
        self.last = text

    def end(self) -> None:
        if self.tty and self.last:
            click.echo(err=True)
        self.last = ""


def progress_text(run: dict, progress: dict | None) -> str:
    p = progress or {}
    parts = [run["status"]]
    if p.get("epoch") and p.get("epochs"):
        parts.append(f"epoch {p['epoch']}/{p['epochs']}")
        if p.get("steps_per_epoch"):
            parts.append(f"step {p.get('step_in_epoch') or 0}/{p['steps_per_epoch']}")
    elif p.get("step") is not None:
        parts.append(f"step {p['step']}")
    if p.get("fraction") is not None:
        parts.append(f"{p['fraction']:.0%}")
    if p.get("rate"):
        parts.append(f"{p['rate']:.1f} steps/s")
    if p.get("eta_s") is not None and p.get("eta_s") > 0:
        parts.append(f"ETA {int(p['eta_s']) // 60}:{int(p['eta_s']) % 60:02d}")
    if run["status"] == "QUEUED" and run.get("queue_position"):
        parts.append(f"queue position {run['queue_position']}")
        if run.get("queue_reason"):
            parts.append(run["queue_reason"])
    return ", ".join(parts)


def wait_run(api: Api, run: dict, timeout: float | None, interval: float = 2.0) -> dict:
    deadline = None if timeout is None else time.monotonic() + timeout
    line = StatusLine()
    rid = run["id"]
    try:
        while not run["terminal"]:
            progress = api.get(f"/api/runs/{rid}/resources/").get("progress") if run["status"] == "RUNNING" else None
            line.show(f"Run {rid}: " + progress_text(run, progress))
            if deadline is not None and time.monotonic() > deadline:
                line.end()
                raise click.ClickException(f"run {rid} still {run['status']} after {timeout:g} s.")
            time.sleep(interval)
            run = api.get(f"/api/runs/{rid}/")
    except KeyboardInterrupt:
        line.end()
        info(f"Stopped waiting; run {rid} goes on (`sparkdeck runs wait {rid}`, or cancel it on its page).")
        raise
    line.end()
    if run["status"] != "SUCCEEDED":
        reason = run.get("status_reason") or "no reason given"
        raise click.ClickException(f"run {rid} {run['status']}: {reason}")
    acc, loss = run.get("test_accuracy"), run.get("test_loss")
    scores = ", ".join(
        s
        for s in (
            f"test accuracy {acc:.4f}" if acc is not None else "",
            f"test loss {loss:.4f}" if loss is not None else "",
        )
        if s
    )
    info(f"Run {rid} SUCCEEDED" + (f": {scores}" if scores else "") + ".")
    return run


@runs.command("logs")
@click.argument("run_id", type=click.IntRange(min=1))
@click.option("--follow", "-f", is_flag=True, help="Keep printing what is written until the run ends.")
@click.option("--executor", help="An executor's id (see `sparkdeck runs show`); default: the driver's log.")
@click.option("--stream", type=click.Choice(["stderr", "stdout"]), default="stderr", help="Executor log stream.")
@click.option("--interval", type=click.FloatRange(min=0.1), default=1.0, help="Seconds between polls.")
@pass_api
def runs_logs(api, run_id, follow, executor, stream, interval):
    """Print a run's driver log (or an executor's), each byte once; --follow until the run ends."""
    run = api.get(f"/api/runs/{run_id}/")
    path = f"/api/runs/{run_id}/logs/driver/" if executor is None else f"/api/runs/{run_id}/logs/{executor}/{stream}/"
    what = "driver log" if executor is None else f"executor {executor}'s {stream}"
    offset, found = 0, False
    was_running = not run["terminal"]
    last_read = False
    while True:
        terminal = run["terminal"]  # read before the log: what was written before the end is read below
        while True:
            try:
                chunk = api.get(path, offset=offset)
            except ApiError as exc:
                if exc.status != 404:
                    raise
                break  # not written (yet)
            found = True
            if chunk["text"]:
                click.echo(chunk["text"], nl=False)
                sys.stdout.flush()
            offset = chunk["next_offset"]
            if chunk["eof"]:
                break
        if not follow or (terminal and (last_read or not was_running)):
            break
        if terminal:
            # The driver's launcher notes its exit in the log just as the run is marked ended: read once more.
            last_read = True
            time.sleep(END_GRACE_S)
            continue
        time.sleep(interval)
        run = api.get(f"/api/runs/{run_id}/")
    if not found:
        known = ", ".join(run.get("executors") or []) or "none yet"
        extra = f" (executors: {known})" if executor is not None else ""
        raise click.ClickException(f"run {run_id} has no {what}{extra}; it is {run['status']}.")


@runs.command("download")
@click.argument("run_id", type=click.IntRange(min=1))
@click.option("--what", type=click.Choice(sorted(WHAT)), default="model", show_default=True, help="Which file.")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="File or folder (default: run<id>-<name> here).")
@pass_api
def runs_download(api, run_id, what, output):
    """Download a run's exported model, predictions CSV or TensorBoard events; prints the file's path."""
    artifact = api.get(f"/api/runs/{run_id}/artifacts/").get(WHAT[what])
    if not artifact:
        run = api.get(f"/api/runs/{run_id}/")
        raise click.ClickException(f"run {run_id} has no {what} file (yet); it is {run['status']}.")
    name = artifact["name"] if artifact["name"].startswith(f"run{run_id}") else f"run{run_id}-{artifact['name']}"
    dest = output or Path(name)
    if dest.is_dir():
        dest = dest / name
    if not dest.parent.is_dir():
        raise click.ClickException(f"no such folder: {dest.parent}")

    def bar(total):
        if total is None:
            return nullcontext(type("NoBar", (), {"update": staticmethod(lambda n: None)})())
        return click.progressbar(length=total, label=f"Downloading {dest.name}", file=sys.stderr)

    size = api.download(artifact["url"], dest, bar)
    info(f"Wrote {size} bytes to {dest}.")
    click.echo(str(dest))


@runs.command("list")
@click.option("--filter", "expr", help='An expression, e.g. "accuracy > 0.9 and epochs >= 5" (docs/run_table.md).')
@click.option("--status", help="Statuses, comma-separated.")
@click.option("--template", help="Template keys, comma-separated.")
@click.option("--dataset", help="Dataset ids, comma-separated.")
@click.option("--tag", help="Tags, comma-separated (runs with all of them).")
@click.option("--search", "q", help="Words in the name, notes or tags.")
@click.option("--sort", help="A column key, - for descending (default -created).")
@click.option("--archived", type=click.Choice(["0", "1", "only"]), help="1: include archived runs; only.")
@click.option("--team", help="Team id or slug.")
@click.option("--limit", type=click.IntRange(min=0), default=50, show_default=True, help="At most this many; 0: all.")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON (a list of runs).")
@pass_api
def runs_list(api, limit, as_json, **filters):
    """Your teams' runs, filtered like the run table (the server applies the filter)."""
    size = min(limit, 100) if limit else 100
    items = collect(api, "/api/runs/", {**filters, "size": size}, limit)
    if as_json:
        click.echo(json.dumps(items, indent=2))
        return

    def num(v):
        return "" if v is None else f"{v:.4f}"

    rows = [
        (
            r["id"],
            r["status"],
            r["template"],
            (r.get("dataset") or {}).get("name", ""),
            "" if r.get("epochs") is None else r["epochs"],
            num(r.get("test_accuracy")),
            num(r.get("test_loss")),
            (r.get("created_at") or "")[:16].replace("T", " "),
            r.get("name") or "",
        )
        for r in items
    ]
    table(("ID", "STATUS", "TEMPLATE", "DATASET", "EPOCHS", "ACCURACY", "LOSS", "CREATED", "NAME"), rows)


@runs.command("show")
@click.argument("run_id", type=click.IntRange(min=1))
@pass_api
def runs_show(api, run_id):
    """Print one run as the API's JSON (status, hyperparameters, result, executors, links)."""
    click.echo(json.dumps(api.get(f"/api/runs/{run_id}/"), indent=2))


@runs.command("cancel")
@click.argument("run_id", type=click.IntRange(min=1))
@pass_api
def runs_cancel(api, run_id):
    """Cancel a queued or running run."""
    run = api.post(f"/api/runs/{run_id}/cancel/")
    info(f"Run {run['id']}: {run['status']}.")


# ---------------------------------------------------------------- output


def collect(api: Api, path: str, params: dict, limit: int) -> list[dict]:
    """A list endpoint's items, following `next` until `limit` (0: all)."""
    page = api.get(path, **params)
    items = list(page["results"])
    while page.get("next") and (not limit or len(items) < limit):
        page = api.get(page["next"])
        items += page["results"]
    return items[:limit] if limit else items


def table(header: tuple, rows: list[tuple]) -> None:
    cells = [tuple(str(c) for c in header)] + [tuple(str(c) for c in r) for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for r in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
