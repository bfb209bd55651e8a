"""Build the ``--py-files`` zip: ``workers/__init__.py`` + ``workers/jobs/**/*.py``.

Executors import ``workers.jobs.*`` from it (the TFoS map function is pickled by reference), so
the same submission works on a remote cluster. ``python -m workers.jobs.package DEST.zip``.
"""

from __future__ import annotations

import os
import sys
import zipfile

_JOBS_DIR = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(os.path.dirname(_JOBS_DIR))


def build_jobs_zip(dest: str) -> str:
    tmp = f"{dest}.tmp-{os.getpid()}"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(os.path.join(_ROOT, "workers", "__init__.py"), "workers/__init__.py")
        for folder, dirs, files in os.walk(_JOBS_DIR):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            for name in sorted(files):
                if name.endswith(".py"):
                    path = os.path.join(folder, name)
                    z.write(path, os.path.relpath(path, _ROOT))
    os.replace(tmp, dest)  # never leave a half-written zip where spark-submit may read it
    return dest


if __name__ == "__main__":
    print(build_jobs_zip(sys.argv[1] if len(sys.argv) > 1 else "jobs.zip"))
