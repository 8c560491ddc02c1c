"""The device calls of one GPU session, written out from a pack's manifest: what each carries, runs and may take.

Every call carries the manifest and one group folder of the pack. The first also checks the
machine (GPU, torch, torchvision, Pillow's WebP) and starts the CUDA bench in its own process
session (``setsid``), so the bench runs while the next calls carry the rest of the data; the last
unpacks, trains until its deadline (waiting for the bench first, see :func:`.jobs.gpu_lock`) and
collects the results into ``$OUT``. A single-group pack does all of it in one call, bench included.
The calls must follow each other within the machine's idle time (30 s): a machine given back
in between loses the groups carried so far.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import pack as pack_lib
from .jobs import LOCK_FILE, SOURCE_ENV

__all__ = ["DeviceCall", "device_calls", "COMMAND_LIMIT", "CALL_LIMIT_S", "CARRY_LIMIT"]

COMMAND_LIMIT = 2000
"""Characters of one call's command."""
CALL_LIMIT_S = 600
"""Seconds one call's command may run."""
CARRY_LIMIT = 8
"""Paths one call may carry."""
FINISH_S = 120
"""Seconds the last call keeps beside the batch's minutes: unpack before, stopping the runs and collect after."""
STOP_S = 30
"""Seconds after the deadline at which the batch is interrupted (it then stops its runs, each keeping its checkpoint)."""
BENCH_S = 180
"""Seconds the CUDA bench may take: the last call waits that long at most for it (a single call runs it first)."""
JOBS = 12
"""Training processes side by side on the lent GPU (one CPU thread each)."""

_ENV = "export PYTHONPATH=. PYTHONUNBUFFERED=1; E='python3 -m elrt_core.cli'"
_CHECK = (
    "nvidia-smi -L; python3 -c \"import torch, torchvision, PIL.features as f; print('torch', torch.__version__, "
    "'torchvision', torchvision.__version__, 'cuda', torch.cuda.is_available(), "
    "torch.cuda.get_device_name(0) if torch.cuda.is_available() else '-', 'webp', f.check('webp'))\""
)
_BENCH_BG = "mkdir -p .device; setsid nohup $E gpu bench > .device/bench.log 2>&1 < /dev/null & sleep 1; echo bench started"


@dataclass(frozen=True)
class DeviceCall:
    """One call of the device tool: the paths to ``carry``, the ``command`` and its ``timeout_s``."""

    carry: list[str]
    command: str
    timeout_s: int

    def as_dict(self) -> dict[str, Any]:
        return {"carry": self.carry, "command": self.command, "timeout_s": self.timeout_s}


def _last(profile: str, minutes: float, bench_inline: bool) -> str:
    """Unpack, wait for the bench (or run it here), train until the deadline, write the status, collect."""
    results, data = pack_lib.DEVICE_RESULTS, pack_lib.DEVICE_DATA
    bench = f"timeout {BENCH_S} $E gpu bench; " if bench_inline else f"flock -w {BENCH_S} {results}/{LOCK_FILE} true; "
    train_minutes = minutes - BENCH_S / 60 if bench_inline else minutes
    batch = (
        f"$E batch --profile {profile} --executor local --device cuda --jobs {JOBS} --threads 1 --minutes {train_minutes:g} "
        f"--results {results} --data-dir {data}"
    )
    return (
        f"$E gpu unpack --profile {profile} || exit 3; . {SOURCE_ENV}; {bench}"
        f'timeout -s INT -k 30 {round(train_minutes * 60) + STOP_S} {batch} 2>&1 | tee "$OUT/batch.log"; '
        f"$E status --profile {profile} --results {results} --json {results}/gpu/status-{profile}.json > /dev/null; "
        f'cp .device/bench.log "$OUT/" 2>/dev/null; $E gpu collect --out "$OUT"'
    )


def device_calls(
    manifest: dict[str, Any], pack_dir: Path = pack_lib.PACK_DIR, *, profile: str = "paper", minutes: float = 8.0
) -> list[DeviceCall]:
    """The calls that carry the pack of ``manifest`` (folder ``pack_dir``, relative to the repository
    root) and train ``profile`` for ``minutes`` in the last one; each command fits the tool's limits."""
    if minutes * 60 + FINISH_S > CALL_LIMIT_S:
        raise ValueError(
            f"--minutes {minutes:g} leaves no room in a {CALL_LIMIT_S} s call: at most {(CALL_LIMIT_S - FINISH_S) / 60:g}"
        )
    carries = pack_lib.carry_plan(manifest, pack_dir)
    calls = []
    for i, carry in enumerate(carries):
        first, last = i == 0, i == len(carries) - 1
        steps = [_ENV]
        if first:
            steps.append(_CHECK)
        if first and not last:
            steps.append(_BENCH_BG)
        if last:
            steps.append(_last(profile, minutes, bench_inline=first))
        elif not first:
            steps.append(f"ls -l {carry[1]}")
        calls.append(DeviceCall(carry, "; ".join(steps), CALL_LIMIT_S if last else 120))
    for call in calls:
        assert len(call.command) <= COMMAND_LIMIT and len(call.carry) <= CARRY_LIMIT, call
    return calls
