"""TFoS's reservation handshake, polled every 0.1 s instead of every second.

Every TF node registers with the driver's reservation server, then asks it once a second whether
all nodes have registered, and sleeps a second more after the answer is yes; the driver also looks
once a second. That is 1-2 s of idle time in every run, before training can start. These are
the same loops (same messages, errors and timeout) with a short poll. Executors get the patch
from ``workers.jobs.train``'s import (as for :mod:`workers.jobs.loopback`), the driver from
:func:`apply` before ``TFCluster.run``. Tiny and lazy on purpose: no TensorFlow import here.
"""

from __future__ import annotations

import logging
import sys
import time

POLL_SECONDS = 0.1
logger = logging.getLogger("tensorflowonspark.reservation")  # TFoS's logger: same log lines


def server_await_reservations(self, sc, status=None, timeout=600):
    """Driver: block until all reservations are in; log, fail and time out as TFoS does."""
    status = {} if status is None else status
    start = last_log = time.monotonic()
    if not self.reservations.done():
        logger.info("waiting for %d reservations", self.reservations.remaining())
    while not self.reservations.done():
        if "error" in status:
            sc.cancelAllJobs()
            sc.stop()
            sys.exit(1)
        now = time.monotonic()
        if now - start > timeout:
            raise Exception("timed out waiting for reservations to complete")
        if now - last_log >= 1.0:  # the once-a-second line people (and the watchdog) look for
            logger.info("waiting for %d reservations", self.reservations.remaining())
            last_log = now
        time.sleep(POLL_SECONDS)
    logger.info("all reservations completed")
    return self.reservations.get()


def client_await_reservations(self):
    """Executor: poll until all reservations are in, then return the cluster info."""
    while not self._request("QUERY"):
        time.sleep(POLL_SECONDS)
    return self.get_reservations()


def apply() -> None:
    """Patch tensorflowonspark.reservation's two waits; idempotent."""
    from tensorflowonspark import reservation

    reservation.Server.await_reservations = server_await_reservations
    reservation.Client.await_reservations = client_await_reservations
