"""Reading the tar archives that travel to and from a lent GPU machine, without trusting them.

Both directions carry tar archives written by this code (:mod:`.pack`: checkpoints to resume;
:mod:`.collect`: records, logs, weights and checkpoints coming back), but what arrives may be damaged
or made by someone else. :func:`read_members` is the one way they are opened:

* every member is a regular file (no link, folder or device) whose path matches the caller's pattern
  and has no empty, ``.`` or ``..`` segment, so nothing can land outside the target folder;
* the sizes the member headers declare may add up to ``limit`` bytes at most, checked before each
  member's data is decompressed, so a small archive cannot expand into a huge file;
* everything is read and checked before the caller writes anything.
"""

from __future__ import annotations

import io
import re
import tarfile
import zlib

__all__ = ["read_members", "safe_path", "ArchiveError"]


class ArchiveError(ValueError):
    """An archive that is not what the study writes: unreadable, an unexpected or unsafe member, too large."""


def safe_path(name: str, allowed: re.Pattern[str]) -> bool:
    """``name`` matches ``allowed`` and is a relative path without empty, ``.`` or ``..`` segments."""
    return allowed.fullmatch(name) is not None and all(s not in ("", ".", "..") for s in name.split("/"))


def read_members(blob: bytes, *, allowed: re.Pattern[str], limit: int, what: str, gzip: bool = False) -> dict[str, bytes]:
    """The members of the tar archive ``blob`` (gzip-compressed if ``gzip``) by path, each checked as
    the module docstring says; :class:`ArchiveError` naming ``what`` and the first problem otherwise."""
    members: dict[str, bytes] = {}
    total = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz" if gzip else "r:") as tar:
            for member in tar:  # headers are read one by one: a member's size is checked before its data is
                if not (member.isfile() and safe_path(member.name, allowed)):
                    kind = "file" if member.isfile() else "link or folder"
                    raise ArchiveError(f"{what}: unexpected member {member.name!r} ({kind}); nothing written")
                if member.name in members:
                    raise ArchiveError(f"{what}: member {member.name!r} appears twice; nothing written")
                total += member.size
                if total > limit:
                    raise ArchiveError(
                        f"{what} expands to more than {limit / (1 << 20):.0f} MiB (at {member.name!r}); nothing written"
                    )
                members[member.name] = tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        raise ArchiveError(f"{what} is not a readable {'gzip-compressed ' if gzip else ''}tar archive ({e})") from None
    return members
