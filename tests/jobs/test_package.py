import zipfile

from workers.jobs.package import build_jobs_zip


def test_zip_holds_the_jobs_package_only(tmp_path):
    dest = build_jobs_zip(str(tmp_path / "jobs.zip"))
    names = zipfile.ZipFile(dest).namelist()
    assert "workers/__init__.py" in names
    for module in ("__init__", "driver", "train", "data", "inference", "loopback", "metrics", "spec", "templates"):
        assert f"workers/jobs/{module}.py" in names
    assert all(n.startswith("workers/") and n.endswith(".py") for n in names)
    assert not any("__pycache__" in n or n.startswith("workers/backends") for n in names)
    # workers/__init__.py must not import Django or Celery on executors
    assert zipfile.ZipFile(dest).read("workers/__init__.py").strip() == b""
