"""Make TFoS use a chosen "bind host" (e.g. 127.0.0.1) instead of the default-route address.

TFoS asks ``tensorflowonspark.util.get_ip_address()`` for the address its TF gRPC servers,
reservation server and manager lookups use. On a loopback test cluster that must be 127.0.0.1.
Executors: ``workers.jobs.train`` calls :func:`apply` at import time, and executors import it
while unpickling the TFoS task (the map function is pickled by reference), i.e. before TFoS's
``_mapfn`` calls ``get_ip_address()``. That is not enough for TFoS's *other* tasks (feeding,
shutdown): Spark may run them in a fresh Python worker that never imported our code, and TFoS
then looks for its manager under the wrong address ("No TFManager found on this node"). So the
driver (:func:`configure_driver`) also wraps every TFoS task function in :func:`call_bound`,
which executors import (by reference) and which applies the patch first.
Off unless ``SPARKDECK_BIND_HOST`` is set: real clusters want the real address.
Tiny and lazy on purpose: no TensorFlow import here.
"""

from __future__ import annotations

import functools
import os

ENV = "SPARKDECK_BIND_HOST"


def bind_host() -> str | None:
    return os.environ.get(ENV, "").strip() or None


def apply() -> str | None:
    """Patch ``tensorflowonspark.util.get_ip_address`` when a bind host is set; idempotent."""
    host = bind_host()
    if not host:
        return None
    from tensorflowonspark import util

    if getattr(util.get_ip_address, "_sparkdeck_host", None) != host:

        def get_ip_address() -> str:
            return host

        get_ip_address._sparkdeck_host = host
        util.get_ip_address = get_ip_address
    return host


def call_bound(fn, iterator):
    """Executor side: patch (from the task's own environment), then run the TFoS task."""
    apply()
    return fn(iterator)


def configure_driver(host: str | None) -> None:
    """Driver side: TFoS reservation server advertises (TFOS_SERVER_HOST) and binds on host;
    TFoS's executor tasks apply the patch before they run."""
    if not host:
        return
    os.environ[ENV] = host
    os.environ["TFOS_SERVER_HOST"] = host
    apply()
    _bind_reservation_server(host)
    _wrap_tfos_tasks()


def _wrap_tfos_tasks() -> None:
    from tensorflowonspark import TFSparkNode

    for name in ("run", "train", "inference", "shutdown"):
        factory = getattr(TFSparkNode, name)
        if getattr(factory, "_sparkdeck_wrapped", False):
            continue

        def wrapped(*args, _factory=factory, **kwargs):
            return functools.partial(call_bound, _factory(*args, **kwargs))

        wrapped._sparkdeck_wrapped = True
        setattr(TFSparkNode, name, wrapped)


def _bind_reservation_server(host: str) -> None:
    # TFoS binds its reservation socket on '' (all interfaces); bind it on the host instead.
    import socket

    from tensorflowonspark import reservation

    def start_listening_socket(self):
        for port in self.get_server_ports():
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((host, port))
                sock.listen(10)
                return sock
            except OSError:
                sock.close()
        raise RuntimeError(f"reservation server cannot bind on {host}")

    reservation.Server.start_listening_socket = start_listening_socket
