"""The import graph is a DAG: workers/ (Celery app, backends, supervision, job code) never imports
webapp/, which finds its tasks by autodiscovery instead. Checked on the source, every import statement."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imported_modules(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module


def test_workers_never_import_webapp():
    offenders = [
        f"{p.relative_to(ROOT)}: {m}"
        for p in sorted((ROOT / "workers").rglob("*.py"))
        for m in imported_modules(p)
        if m == "webapp" or m.startswith("webapp.")
    ]
    assert offenders == []


def test_every_app_with_tasks_is_found_by_autodiscovery():
    from django.conf import settings

    from workers.celery import app

    app.loader.import_default_modules()
    task_modules = {t.__module__ for name, t in app.tasks.items() if not name.startswith("celery.")}
    on_disk = {f"webapp.{p.parent.name}.tasks" for p in (ROOT / "webapp").glob("*/tasks.py")}
    assert on_disk and on_disk <= task_modules
    assert all(m.rsplit(".", 1)[0] in settings.INSTALLED_APPS for m in on_disk)
