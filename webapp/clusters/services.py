"""Turning a Cluster row into what the job layer needs: a backend and the per-cluster submit settings."""

from __future__ import annotations

from django.conf import settings

from workers.backends.base import Backend, get_backend

from . import sparkconf
from .models import Cluster


def backend_for(cluster: Cluster) -> Backend:
    common = {
        "rest_url": cluster.rest_url,
        "master_url": cluster.master_url or None,
        "spark_home": cluster.spark_home or None,
    }
    if cluster.kind == Cluster.Kind.YARN:
        archives = [cluster.python_archive] if cluster.python_archive else []
        return get_backend(
            "yarn",
            **common,
            queue=cluster.yarn_queue or "default",
            deploy_mode=cluster.deploy_mode,
            archives=archives,
            python_archive_alias=cluster.python_archive_alias or None,
            gpu_discovery_script=cluster.gpu_discovery_script or None,
            timeout=float(cluster.log_fetch_timeout_s),
            logs_timeout=float(cluster.yarn_logs_timeout_s),
            collect_logs=cluster.collect_executor_logs,
        )
    return get_backend(
        cluster.kind,
        **common,
        http_timeout=float(cluster.log_fetch_timeout_s),
        collect_logs=cluster.collect_executor_logs,
    )


def executor_python(cluster: Cluster) -> str:
    return cluster.executor_python or settings.SPARK_PYTHON


def extra_conf(cluster: Cluster) -> dict[str, str]:
    return sparkconf.as_strings(cluster.extra_conf or {})


def executor_env(cluster: Cluster) -> dict[str, str]:
    return sparkconf.as_strings(cluster.executor_env or {})
