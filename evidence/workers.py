"""Worker processes that never outlive the command that started them.

A cron job killed with SIGKILL must not leave parsing or rendering workers
behind holding its pipes and memory: on Linux each worker asks the kernel to
kill it when its parent dies (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Process-pool initializer: end this worker when the process that made it ends."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before we got here
        os._exit(1)
