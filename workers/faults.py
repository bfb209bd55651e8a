"""Named pause points for the fault tests (tests/e2e/test_faults.py).

``SPARKDECK_FAULT_PAUSE="after-claim=30,after-launch=30"`` makes the process sleep that many seconds
when it reaches the point, and say so in its log, so that a test can SIGKILL it at that exact moment
(between a run's claim and its launch, say) instead of hoping to hit a one-second window. Unset, a
point does nothing; it never changes what the code does, only when.
"""

from __future__ import annotations

import logging
import os
import time

ENV = "SPARKDECK_FAULT_PAUSE"
log = logging.getLogger(__name__)


def pause(point: str) -> None:
    spec = os.environ.get(ENV, "")
    if not spec:
        return
    for item in spec.split(","):
        name, _, seconds = item.partition("=")
        if name.strip() == point:
            log.warning("fault point %s: pausing %s s", point, seconds)
            time.sleep(float(seconds or 0))
