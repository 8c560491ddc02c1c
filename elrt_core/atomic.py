"""Atomic file writes: the one place where a file is written beside its target and renamed over it.

A reader (the book, a resuming run, a second process) sees either the old file or the complete new
one, never a half-written file: the content goes to a uniquely named temporary file in the target's
folder (same file system, so ``os.replace`` is an atomic rename), is flushed to disk, gets mode 0644,
and only then replaces the target; the folder is flushed after the rename so that the rename survives
a power cut. On any error the temporary file is removed and the target is left as it was.

Every file the study writes this way (records, checkpoints, weights, data files, GPU packs, Figure 3's
tables) is mode 0644 whatever the umask: results are meant to be read by other users and processes
(a notebook server, CI) and are committed to git, which keeps only the executable bit anyway.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["replacing", "write_bytes", "write_text"]


@contextmanager
def replacing(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; write it in the ``with`` body, and on a normal exit it
    is fsynced, made 0644 and renamed over ``path``, and the folder is fsynced (folders are created).
    An exception removes it and leaves ``path`` as it was; an OS error that names no file (a full disk
    during a write) is raised again naming ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        _fsync(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError) and e.filename is None and e.errno is not None:
            raise OSError(e.errno, e.strerror, str(path)) from e
        raise
    _fsync(path.parent)


def _fsync(path: Path) -> None:
    """Flush ``path`` (a file or, on POSIX, a folder) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`replacing`); returns ``path``."""
    with replacing(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`replacing`); returns ``path``."""
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
