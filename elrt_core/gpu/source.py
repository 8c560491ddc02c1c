"""Which commit the code on a lent GPU machine is, when that machine's copy has no ``.git``.

A device call copies the working tree, not the repository, so ``git rev-parse HEAD`` may fail
there and a run record would name no commit. :func:`state` (here, at pack time) lists the git
object id of every file of ``HEAD``; :func:`verify` (on the device) hashes the files it finds the
same way. Equal ids everywhere mean the copy is that commit, unchanged; any difference makes the
copy ``dirty`` and is listed. :func:`environment` passes the answer to the training processes,
whose records take it when git itself cannot answer (:func:`elrt_core.records.git_state`).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path
from typing import Any

__all__ = ["blob_id", "state", "check", "verify", "environment", "COMMIT_VAR", "DIRTY_VAR"]

COMMIT_VAR = "ELRT_SOURCE_COMMIT"
DIRTY_VAR = "ELRT_SOURCE_DIRTY"
_SYMLINK_MODE = "120000"


def blob_id(path: Path) -> str:
    """Git's object id of ``path`` (SHA-1 of ``b"blob <size>\\0"`` and the content; a symbolic link's
    content is its target), as ``git hash-object`` prints it for a file without filters."""
    data = os.readlink(path).encode() if path.is_symlink() else path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _git(root: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise FileNotFoundError(f"`git {' '.join(args)}` failed in {root}: {out.stderr.strip()}")
    return out.stdout


def state(root: Path) -> dict[str, Any]:
    """``{"commit", "dirty", "files": {path: blob id}}`` of the checkout at ``root``: ``HEAD``, whether
    tracked files differ from it now, and the object id of every file of ``HEAD`` (submodules left out)."""
    files = {}
    for entry in _git(root, "ls-tree", "-r", "-z", "HEAD").split("\0"):
        if not entry:
            continue
        meta, path = entry.split("\t", 1)
        mode, kind, oid = meta.split()
        if kind == "blob":
            files[path] = oid if mode != _SYMLINK_MODE else "link:" + oid
    return {
        "commit": _git(root, "rev-parse", "HEAD").strip(),
        "dirty": bool(_git(root, "status", "--porcelain", "--untracked-files=no").strip()),
        "files": files,
    }


def check(recorded: Any) -> None:
    """``ValueError`` naming the first way ``recorded`` (read from a pack's manifest) differs from what
    :func:`state` returns: a 40-digit ``commit``, a boolean ``dirty``, and ``files`` mapping relative
    paths inside the tree (no ``..``) to object ids."""
    if not isinstance(recorded, dict):
        raise ValueError(f"a source state is an object, got {type(recorded).__name__}")
    if not (isinstance(recorded.get("commit"), str) and len(recorded["commit"]) == 40) or not isinstance(
        recorded.get("dirty"), bool
    ):
        raise ValueError("a source state needs a 40-digit 'commit' and a true or false 'dirty'")
    files = recorded.get("files")
    if not isinstance(files, dict) or not all(isinstance(oid, str) for oid in files.values()):
        raise ValueError("a source state needs 'files', paths with their object ids")
    outside = next((p for p in files if Path(p).is_absolute() or ".." in Path(p).parts), None)
    if outside is not None:
        raise ValueError(f"the source state names a file outside the tree: {outside!r}")


def verify(root: Path, recorded: dict[str, Any]) -> dict[str, Any]:
    """Compare the files under ``root`` with ``recorded`` (a :func:`state`, shape-checked by
    :func:`check`): ``{"commit", "dirty", "changed"}`` where ``changed`` names (up to 20) files that are
    missing or differ."""
    changed = []
    for path, oid in recorded["files"].items():
        p = root / path
        if not (p.is_file() or p.is_symlink()) or blob_id(p) != oid.removeprefix("link:"):
            changed.append(path)
    return {
        "commit": recorded["commit"],
        "dirty": bool(changed),
        "changed": changed[:20],
        "files_checked": len(recorded["files"]),
    }


def environment(verified: dict[str, Any]) -> dict[str, str]:
    """The variables that hand a :func:`verify` answer to :func:`elrt_core.records.git_state`."""
    return {COMMIT_VAR: verified["commit"], DIRTY_VAR: "1" if verified["dirty"] else "0"}
