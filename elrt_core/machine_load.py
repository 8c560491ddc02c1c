"""How busy the rest of the machine was while a bench measured: a CPU timing taken beside a training
run (or any other busy process) measures the sharing, not the network.

From Linux's ``/proc/stat`` (the machine's busy CPU time, in clock ticks: ``user + nice + system + irq
+ softirq + steal``) minus this process's own CPU time and that of its finished, waited-for children
(:func:`os.times`: all threads; the compiler runs of ``torch.compile``, say), divided by the wall time: the average number of cores that *other* processes kept busy. On a machine
without ``/proc/stat`` it is not measured (``None``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

__all__ = ["BackgroundLoad", "QUIET_CORES", "quiet", "quiet_limit", "busy"]

QUIET_CORES = 0.25
"""At most this many cores busy with other processes, on average over a measurement, counts as a quiet
machine (a training process alone keeps one core busy; an idle system uses a few hundredths). The
environment variable ``ELRT_QUIET_CORES`` replaces it (:func:`quiet_limit`): for a machine whose idle
load is higher, or a test of the chain that does not measure speed."""

_STAT = Path("/proc/stat")
_BUSY_FIELDS = (0, 1, 2, 5, 6, 7)  # user, nice, system, irq, softirq, steal (iowait and idle are not busy)


def _busy_seconds() -> float | None:
    """Busy CPU seconds of the whole machine since boot, summed over cores; ``None`` without ``/proc/stat``."""
    try:
        fields = _STAT.read_text().splitlines()[0].split()[1:]
    except OSError:
        return None
    return sum(int(fields[i]) for i in _BUSY_FIELDS if i < len(fields)) / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    """CPU seconds of this process (all threads) and of its children that have ended."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class BackgroundLoad:
    """Started when made; :meth:`provenance` says how many cores other processes used on average since.

    Example::

        load = BackgroundLoad()
        ...  # the measurement
        records.provenance(..., extra=load.provenance())  # {"background_load_cores": 0.03}
    """

    def __init__(self) -> None:
        self._wall, self._own, self._busy = time.perf_counter(), _own_seconds(), _busy_seconds()

    def cores(self) -> float | None:
        """Average number of cores that other processes kept busy since the start (>= 0, 2 decimals)."""
        busy = _busy_seconds()
        wall = time.perf_counter() - self._wall
        if busy is None or self._busy is None or wall <= 0:
            return None
        other = (busy - self._busy) - (_own_seconds() - self._own)
        return round(max(other, 0.0) / wall, 2)

    def provenance(self) -> dict[str, float | None]:
        """``{"background_load_cores": cores}`` for a record's provenance block."""
        return {"background_load_cores": self.cores()}


def quiet_limit() -> float:
    """The most cores other processes may keep busy for a quiet measurement: ``ELRT_QUIET_CORES``, else
    :data:`QUIET_CORES`."""
    text = os.environ.get("ELRT_QUIET_CORES")
    if text is None:
        return QUIET_CORES
    try:
        limit = float(text)
    except ValueError:
        limit = -1.0
    if not limit >= 0:
        raise ValueError(f"ELRT_QUIET_CORES must be a number of cores >= 0, got {text!r}")
    return limit


def quiet(provenance: dict) -> bool | None:
    """Whether a record was measured on a quiet machine (:func:`quiet_limit`); ``None`` for a record
    that did not measure it (made before this module, or without ``/proc/stat``)."""
    cores = provenance.get("background_load_cores")
    return None if cores is None else cores <= quiet_limit()


def busy(provenance: dict) -> bool:
    """Whether a record was measured beside busy processes (:func:`quiet` false): such a timing
    measures the sharing, not the network, and the study never uses it. A record that did not measure
    the load is not busy."""
    return quiet(provenance) is False
