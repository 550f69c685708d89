"""The CPUs a process may use, and how many data-loading processes to start when none are asked for."""

from __future__ import annotations

import os

DEFAULT_WORKERS = 4


def usable_cpus() -> int:
    """The CPUs this process may use (its affinity mask on Linux, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_workers() -> int:
    """Data-loading processes when none are asked for: 4, but never more than the usable CPUs (torch warns
    beyond, and on a 2-core machine more processes only compete with the model for the cores)."""
    return min(DEFAULT_WORKERS, usable_cpus())
