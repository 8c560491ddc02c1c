"""Bring back what a lent GPU machine made, and put it into ``results/`` here.

:func:`collect` (on the device) puts the new files of the device's results folder into one
gzip'ed tar under ``$OUT``, cut into volumes of at most 15 MiB, with a manifest beside them
(each volume's size and sha256, the members, what was left out): the batch reports
(``gpu/*.json``), the run records, the CUDA bench records (``bench/...``), the runs' logs, the
final weights of dense runs (the book's Figure 3 reads them) and the checkpoints of unfinished
runs, so that a later session resumes them. A device call returns at most 8 files of at most
16 MiB each, 64 MiB together; if everything does not fit, checkpoints are left out last-planned
first, and the manifest names them. A file identical to the tree's copy (a record the tree
already holds) is not new and stays behind.

:func:`receive` (here) checks the volumes against the manifest, opens the archive without trusting
it (:mod:`.archive`: plain files at allowed paths only, bounded decompression), checks every member
(records against the record schema, checkpoints and weights readable without running code, JSON
objects for the rest) and only then writes into the results folder, never replacing newer local work:

* records, bench records, reports and weights only where no different file is there already (a
  different one is a conflict, reported and left alone);
* a checkpoint only where the run has no record here and the local checkpoint, if any, is of the
  same config and an earlier epoch;
* a log where there is none; a different local log keeps its lines and gets the received ones
  appended;
* nothing into a run folder that a running ``elrt train`` holds locked (``busy``: receive again later).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
import re
import tarfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from .. import atomic, records
from ..train import checkpoint, run_folder
from . import archive

__all__ = ["collect", "receive", "gather", "CollectError", "VOLUME_BYTES", "FILES_LIMIT", "FILE_BYTES_LIMIT", "TOTAL_BYTES_LIMIT"]

MIB = 1 << 20
FILES_LIMIT = 8
FILE_BYTES_LIMIT = 16 * MIB
TOTAL_BYTES_LIMIT = 64 * MIB
"""What one device call brings back from ``$OUT``."""
VOLUME_BYTES = 15 * MIB
MANIFEST_ROOM = 1 * MIB
UNPACKED_LIMIT = 4 * TOTAL_BYTES_LIMIT
"""The most bytes a received archive may expand to: what comes back is at most 64 MiB compressed, and
checkpoints and weights hardly compress (logs and JSON do, but are small)."""
FORMAT = "elrt-gpu-collect"
_VOLUME_FILE = re.compile(r"[A-Za-z0-9._-]+\.tgz\.\d{3}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_SEGMENT = r"[A-Za-z0-9_.+=-]+"
_ALLOWED = re.compile(
    rf"gpu/{_SEGMENT}\.json|bench/(?:{_SEGMENT}/)*{_SEGMENT}\.json"
    rf"|{_SEGMENT}/{_SEGMENT}/(?:record\.json|checkpoint\.pt|weights\.pt|train\.log)"
)
_RANKS = {"report": 0, "record": 1, "bench": 2, "log": 3, "weights": 4, "checkpoint": 5}


class CollectError(ValueError):
    """An archive that cannot be received (missing or corrupted volume, unexpected member) or an
    output folder without room."""


@dataclass(frozen=True)
class _Item:
    """A file to bring back: its path relative to the results folder, where it is, its kind, its order."""

    rel: str
    path: Path
    kind: str
    order: tuple[int, int, str]


def _kind(rel: str, path: Path) -> str | None:
    """What a file of the results folder is, or ``None`` if it does not travel back."""
    parts = rel.split("/")
    if parts[0] == "gpu" and len(parts) == 2 and rel.endswith(".json"):
        return "report"
    if parts[0] == "bench":
        return "bench" if rel.endswith(".json") else None
    if len(parts) != 3:
        return None
    record = path.parent / records.RECORD_FILE
    if parts[2] == records.RECORD_FILE:
        return "record"
    if parts[2] == "train.log":
        return "log"
    if parts[2] == "checkpoint.pt":
        return None if record.exists() else "checkpoint"
    if parts[2] == "weights.pt" and record.exists():
        try:
            return "weights" if json.loads(record.read_text())["config"]["format"] == "dense" else None
        except (OSError, ValueError, KeyError, TypeError):
            return None
    return None


@cache
def _plan_names(profile: str) -> tuple[str, ...]:
    """Run names of the plan of ``profile`` in training order; empty for a folder that is no profile here."""
    from .. import profiles
    from ..study.plan import plan

    try:
        return tuple(r.config.name for r in plan(profiles.load(profile)))
    except Exception:  # not a profile of this checkout: its files still travel, ordered last
        return ()


def _plan_index(profile: str, run: str) -> int:
    """Position of ``run`` in the plan of ``profile`` (runs of unknown profiles or runs come last)."""
    names = _plan_names(profile)
    return names.index(run) if run in names else 1 << 30


def gather(results: Path, tree_results: Path | None = None) -> list[_Item]:
    """The files of ``results`` to bring back, most important first (see the module docstring);
    a file with the same bytes at the same place under ``tree_results`` is left out."""
    items = []
    for path in sorted(Path(results).rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        rel = path.relative_to(results).as_posix()
        kind = _kind(rel, path)
        if kind is None or not _ALLOWED.fullmatch(rel):
            continue
        twin = Path(tree_results) / rel if tree_results else None
        if kind not in ("checkpoint", "log") and twin is not None and twin.is_file() and twin.read_bytes() == path.read_bytes():
            continue
        index = _plan_index(*rel.split("/")[:2]) if kind == "checkpoint" else 0
        items.append(_Item(rel, path, kind, (_RANKS[kind], index, rel)))
    return sorted(items, key=lambda i: i.order)


def _tgz(items: list[_Item]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT, compresslevel=6) as tar:
        for item in items:
            info = tar.gettarinfo(str(item.path), arcname=item.rel)
            info.mode, info.uid, info.gid, info.uname, info.gname = 0o644, 0, 0, "", ""
            with open(item.path, "rb") as f:
                tar.addfile(info, f)
    return buf.getvalue()


def _room(out: Path) -> tuple[int, int]:
    """(files, bytes) still free in ``out`` for the volumes, the manifest's file and room kept aside."""
    present = [p for p in out.rglob("*") if p.is_file()]
    files = FILES_LIMIT - len(present) - 1
    size = TOTAL_BYTES_LIMIT - sum(p.stat().st_size for p in present) - MANIFEST_ROOM
    return files, size


def collect(
    results: Path,
    out: Path,
    *,
    name: str | None = None,
    tree_results: Path | None = None,
    limit_bytes: int | None = None,
    volume_bytes: int = VOLUME_BYTES,
) -> dict[str, Any]:
    """Write the archive of :func:`gather` into ``out`` as ``<name>.tgz.NNN`` volumes and ``<name>.json``;
    return the manifest. ``limit_bytes`` caps the archive below what ``out`` still has room for."""
    out.mkdir(parents=True, exist_ok=True)
    name = name or "elrt-gpu-" + _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    free_files, free_bytes = _room(out)
    budget = min(free_bytes, limit_bytes) if limit_bytes else free_bytes
    budget = min(budget, free_files * volume_bytes)
    if free_files < 1 or budget <= 0:
        raise CollectError(f"{out} has no room left: at most {FILES_LIMIT} files and {TOTAL_BYTES_LIMIT // MIB} MiB come back")
    items = gather(results, tree_results)
    chosen, left_out, size = [], [], 0
    for item in items:
        cost = item.path.stat().st_size + 1024  # its tar header, rounded up
        if size + cost > budget:
            left_out.append(item)
        else:
            chosen.append(item)
            size += cost
    blob = _tgz(chosen)
    while len(blob) > budget:  # compression made it larger than estimated: drop the last-ranked file
        left_out.insert(0, chosen.pop())
        blob = _tgz(chosen)
    volumes = []
    for i, start in enumerate(range(0, max(len(blob), 1), volume_bytes)):
        part = blob[start : start + volume_bytes]
        path = out / f"{name}.tgz.{i:03d}"
        path.write_bytes(part)
        volumes.append({"file": path.name, "bytes": len(part), "sha256": hashlib.sha256(part).hexdigest()})
    manifest = {
        "format": FORMAT,
        "version": 1,
        "name": name,
        "volumes": volumes,
        "members": [{"path": i.rel, "kind": i.kind, "bytes": i.path.stat().st_size} for i in chosen],
        "left_out": [{"path": i.rel, "kind": i.kind, "bytes": i.path.stat().st_size} for i in left_out],
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    (out / f"{name}.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def _read_manifest(manifest_path: Path) -> dict[str, Any]:
    """The collect manifest at ``manifest_path``, checked to have the shape :func:`collect` writes."""
    try:
        manifest = json.loads(Path(manifest_path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CollectError(f"cannot read the collect manifest {manifest_path}: {e}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CollectError(f"{manifest_path} is not a manifest written by `elrt gpu collect`")
    volumes, members = manifest.get("volumes"), manifest.get("members")
    if not isinstance(volumes, list) or not isinstance(members, list):
        raise CollectError(f"{manifest_path} has no list of 'volumes' and 'members': not a manifest `elrt gpu collect` wrote")
    for i, v in enumerate(volumes):
        ok = (
            isinstance(v, dict)
            and isinstance(v.get("file"), str)
            and _VOLUME_FILE.fullmatch(v["file"])
            and isinstance(v.get("bytes"), int)
            and isinstance(v.get("sha256"), str)
            and _SHA256.fullmatch(v["sha256"])
        )
        if not ok:
            raise CollectError(f"{manifest_path}: volume entry {i} needs a volume 'file' name, its 'bytes' and its 'sha256'")
    if not all(isinstance(m, dict) and isinstance(m.get("path"), str) and isinstance(m.get("bytes"), int) for m in members):
        raise CollectError(f"{manifest_path}: every member entry needs its 'path' and 'bytes'")
    return manifest


def _read_archive(manifest_path: Path) -> tuple[dict[str, Any], bytes]:
    manifest = _read_manifest(manifest_path)
    parts, problems = [], []
    for v in manifest["volumes"]:
        path = Path(manifest_path).parent / v["file"]
        data = path.read_bytes() if path.is_file() else None
        if data is None:
            problems.append(f"{v['file']} is missing")
        elif len(data) != v["bytes"] or hashlib.sha256(data).hexdigest() != v["sha256"]:
            problems.append(f"{v['file']} is corrupted")
        else:
            parts.append(data)
    if problems:
        raise CollectError(f"cannot receive {manifest_path}: " + "; ".join(problems))
    return manifest, b"".join(parts)


def _check_member(rel: str, data: bytes, where: str) -> Any:
    """The parsed content of archive member ``rel`` (a record, a checkpoint's or weights' tensors, a JSON
    object; a log as it is); :class:`CollectError` naming it if it is not what its name says."""
    name = f"{where}: {rel}"
    try:
        if rel.endswith("/" + records.RECORD_FILE):
            return records.parse(data, Path(rel))
        if rel.endswith(".json"):
            content = json.loads(data)
            if not isinstance(content, dict):
                raise CollectError(f"{name} holds a {type(content).__name__}, not a JSON object")
            return content
        if rel.endswith("/" + checkpoint.CHECKPOINT_FILE):
            return checkpoint.check(checkpoint.load(io.BytesIO(data), name), name)
        if rel.endswith("/" + checkpoint.WEIGHTS_FILE):
            weights = checkpoint.load(io.BytesIO(data), name)
            if not isinstance(weights, dict):
                raise CollectError(f"{name} holds a {type(weights).__name__}, not a state dict")
            return weights
        return data
    except (records.InvalidRecord, checkpoint.CheckpointError) as e:
        raise CollectError(f"{where}: {e}; nothing written") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CollectError(f"{name} is not JSON ({e}); nothing written") from None


def _checkpoint_outcome(target: Path, received: dict[str, Any]) -> str:
    """Whether a received checkpoint replaces ``target``: ``written`` where there is none or it is an
    earlier epoch of the same config, ``kept`` where the local one is as far or further (or the run
    finished here), ``conflicts`` where the local one is another config's or unreadable."""
    if (target.parent / records.RECORD_FILE).exists():
        return "kept"
    if not target.exists():
        return "written"
    try:
        here = checkpoint.check(checkpoint.load(target), str(target))
    except checkpoint.CheckpointError:
        return "conflicts"
    if here["config_hash"] != received["config_hash"]:
        return "conflicts"
    return "written" if received["epoch"] > here["epoch"] else "kept"


def _log_outcome(target: Path, data: bytes, where: str) -> tuple[str, bytes]:
    """What a received log does with the local ``target``: ``written`` (there is none), ``same`` (its
    lines are there already) or ``appended`` after the local lines; with the bytes to write."""
    if not target.exists():
        return "written", data
    here = target.read_bytes()
    if data in here:
        return "same", here
    separator = b"" if not here or here.endswith(b"\n") else b"\n"
    return "appended", here + separator + f"---- received from {where}\n".encode() + data


def receive(manifest_path: Path, results: Path) -> dict[str, list[str]]:
    """Write the archive of ``manifest_path`` into ``results`` (rules in the module docstring); nothing is
    written unless every member checks out. Returns the member paths by outcome: ``written``,
    ``appended`` (a log added to the local one), ``same``, ``kept`` (the local run is finished or further
    along), ``busy`` (its run folder is locked by a training process) and ``conflicts``."""
    manifest, blob = _read_archive(manifest_path)
    where = Path(manifest_path).name
    members = archive.read_members(blob, allowed=_ALLOWED, limit=UNPACKED_LIMIT, what=str(manifest_path), gzip=True)
    listed = {m["path"]: m["bytes"] for m in manifest["members"]}
    unlisted = [rel for rel, data in members.items() if listed.get(rel) != len(data)]
    if unlisted or len(listed) != len(members):
        raise CollectError(
            f"{manifest_path}: the archive and its manifest list different files (e.g. {unlisted[:3]}); nothing written"
        )
    parsed = {rel: _check_member(rel, data, str(manifest_path)) for rel, data in members.items()}
    outcome: dict[str, list[str]] = {"written": [], "appended": [], "same": [], "kept": [], "busy": [], "conflicts": []}
    for rel, data in members.items():
        target = Path(results) / rel
        if run_folder.busy(target.parent):
            result = "busy"
        elif target.name == checkpoint.CHECKPOINT_FILE:
            result = _checkpoint_outcome(target, parsed[rel])
        elif target.name == "train.log":
            result, data = _log_outcome(target, data, where)
        elif not target.exists():
            result = "written"
        else:
            result = "same" if target.read_bytes() == data else "conflicts"
        if result in ("written", "appended"):
            atomic.write_bytes(target, data)
        outcome[result].append(rel)
    return outcome
