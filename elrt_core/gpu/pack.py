"""Carry the verified CIFAR-10, and the checkpoints of unfinished runs, to a lent GPU machine.

A device call carries the working tree plus named git-ignored paths, 64 MiB in all, and the data
set is 176 MiB of raw pixels, so it travels over several calls. :func:`pack` writes it as
git-ignored *pieces* under ``.device/pack/``:

* ``images-NN.webp``: 5,000 images each (training set in order, then the test set), tiled 100 to
  a row into one lossless WebP picture; WebP predicts each pixel from its neighbours, so tiling
  the 32x32 images side by side compresses them better than PNG rows of 1024 pixels;
* ``labels.u8``: the 60,000 labels as bytes (training set, then test set);
* ``resume.tar.NNN``: a tar of the checkpoints of the profile's planned runs that have no record
  yet, cut into pieces, so a later session resumes them.

The pieces are grouped into folders ``g1``, ``g2``, ... each small enough to travel beside the
tree in one call (:func:`group_limit`); ``manifest.json`` holds every piece's size and sha256,
the md5 sums of the files :func:`unpack` must produce, and the source state of the tree
(:mod:`.source`). :func:`unpack` (on the device) checks every piece, decodes the images, writes
the official binary-version layout ``cifar-10-batches-bin/`` (each record one label byte and the
3072 CHW pixel bytes), whose md5 sums :mod:`elrt_core.data` verifies like any local copy, and
extracts the checkpoints. :func:`carry_plan` says which paths each call carries.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
import os
import re
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import atomic
from .. import data as data_lib
from ..data.checksums import BINARY_MD5
from ..plain_data import first_bad_key
from . import archive, source

__all__ = [
    "pack",
    "unpack",
    "verify_pieces",
    "carry_plan",
    "group_limit",
    "tree_bytes",
    "tracked_bytes",
    "read_manifest",
    "binary_files",
    "PackError",
    "PACK_DIR",
    "DEVICE_DATA",
    "DEVICE_RESULTS",
    "MANIFEST",
    "CALL_LIMIT_BYTES",
    "TREE_LIMIT_BYTES",
    "MIB",
]

MIB = 1 << 20
CALL_LIMIT_BYTES = 64 * MIB
"""What one device call may carry: the working tree and the named ignored paths together."""
TREE_LIMIT_BYTES = 20 * MIB
"""The tracked tree must stay below this (a test checks it), leaving room for data in every call."""
MARGIN_BYTES = 4 * MIB
"""Room kept free in each call beyond the tree measured at pack time (records written meanwhile)."""
PACK_DIR = Path(".device") / "pack"
DEVICE_DATA = Path(".device") / "data"
DEVICE_RESULTS = Path(".device") / "results"
"""Where the device keeps the unpacked data and its results (git-ignored, so they stay while the machine is warm)."""
MANIFEST = "manifest.json"
FORMAT = "elrt-gpu-pack"
VERSION = 1
IMAGES_PER_PIECE = 5000
COLUMNS = 100
TILE = 32
RESUME_PIECE_BYTES = 8 * MIB
WEBP = {"lossless": True, "method": 0, "quality": 0}
"""Pillow's WebP settings: lossless, least effort (on a 2,500-image sample the most effort saved
about 5% of the bytes at 40 times the encoding time)."""
_CODEC = {"name": "webp-lossless", **WEBP, "tile": TILE, "columns": COLUMNS, "images_per_piece": IMAGES_PER_PIECE}
_GROUP = re.compile(r"g\d+")
_PIECE_NAME = re.compile(r"images-\d+\.webp|labels\.u8|resume\.tar\.\d{3}")
_CHECKPOINT_MEMBER = re.compile(r"[A-Za-z0-9_.+-]+/[A-Za-z0-9_.+=-]+/checkpoint\.pt")
_PIECE_KEYS: dict[str, type] = {"name": str, "group": str, "bytes": int, "sha256": str, "kind": str}
_KIND_KEYS: dict[str, dict[str, type]] = {
    "images": {"split": str, "start": int, "count": int},
    "labels": {"train": int, "test": int},
    "resume": {"runs": list},
}
"""The keys of a manifest's piece entry, and of each kind of piece, with their types."""


class PackError(ValueError):
    """A pack that cannot be used: missing or corrupted pieces, no manifest, an undecodable piece."""


@dataclass(frozen=True)
class _Piece:
    """One file of the pack before it is placed: its name, content and what it holds."""

    name: str
    data: bytes
    meta: dict[str, Any]


# ---- sizes of what travels -------------------------------------------------------------------------
def _git_paths(root: Path, *args: str) -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z", *args], cwd=root, capture_output=True, timeout=60)
    if out.returncode != 0:
        raise FileNotFoundError(f"`git ls-files` failed in {root}: {out.stderr.decode().strip()}")
    return [p for p in out.stdout.decode().split("\0") if p]


def _bytes_of(root: Path, paths: list[str]) -> int:
    return sum((root / p).lstat().st_size for p in paths if (root / p).is_file() or (root / p).is_symlink())


def tracked_bytes(root: Path) -> int:
    """Bytes of the files git tracks under ``root`` (``git ls-files``; files deleted from the tree count 0)."""
    return _bytes_of(root, _git_paths(root))


def tree_bytes(root: Path) -> int:
    """Bytes of what a device call copies besides the carried paths: tracked files and untracked
    files that git does not ignore (and a ``shared/`` folder inside the checkout, if any)."""
    shared = root / "shared"
    inside = sum(p.lstat().st_size for p in shared.rglob("*") if p.is_file()) if shared.is_dir() else 0
    return _bytes_of(root, sorted(set(_git_paths(root)) | set(_git_paths(root, "--others", "--exclude-standard")))) + inside


def group_limit(tree: int, margin: int = MARGIN_BYTES) -> int:
    """Bytes of pieces one call can carry beside a tree of ``tree`` bytes."""
    return CALL_LIMIT_BYTES - tree - margin


# ---- image pieces ----------------------------------------------------------------------------------
def _tile(x: np.ndarray, columns: int = COLUMNS) -> np.ndarray:
    """uint8 images (n, 3, 32, 32) -> one uint8 RGB picture (rows * 32, columns * 32, 3), image i at
    row i // columns, column i % columns; the last row is padded with black tiles."""
    n = len(x)
    rows = -(-n // columns)
    padded = np.zeros((rows * columns, 3, TILE, TILE), np.uint8)
    padded[:n] = x
    return np.ascontiguousarray(
        padded.reshape(rows, columns, 3, TILE, TILE).transpose(0, 3, 1, 4, 2).reshape(rows * TILE, columns * TILE, 3)
    )


def _untile(picture: np.ndarray, n: int, columns: int = COLUMNS) -> np.ndarray:
    """The inverse of :func:`_tile`: (rows * 32, columns * 32, 3) -> the first ``n`` images (n, 3, 32, 32)."""
    rows = picture.shape[0] // TILE
    x = picture.reshape(rows, TILE, columns, TILE, 3).transpose(0, 2, 4, 1, 3).reshape(rows * columns, 3, TILE, TILE)
    return np.ascontiguousarray(x[:n])


def _require_webp() -> None:
    from PIL import features

    if not features.check("webp"):
        raise PackError("this Pillow was built without WebP, which the pack's image pieces need (PyPI's Pillow wheels have it)")


def _encode(x: np.ndarray) -> bytes:
    """uint8 images (n, 3, 32, 32) -> lossless WebP bytes of their tiling; checked by decoding."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(_tile(x)).save(buf, "WEBP", **WEBP)
    data = buf.getvalue()
    if not np.array_equal(_decode(data, len(x)), x):
        raise PackError("WebP encoding was not lossless on this machine")
    return data


def _decode(data: bytes, n: int) -> np.ndarray:
    """WebP bytes of :func:`_encode` -> uint8 images (n, 3, 32, 32)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        return _untile(np.asarray(im.convert("RGB")), n)


def _image_pieces(ds: data_lib.DataSet) -> list[_Piece]:
    pieces, index = [], 0
    for split, x in (("train", ds.x_train.numpy()), ("test", ds.x_test.numpy())):
        for start in range(0, len(x), IMAGES_PER_PIECE):
            chunk = x[start : start + IMAGES_PER_PIECE]
            pieces.append(
                _Piece(
                    f"images-{index:02d}.webp",
                    _encode(chunk),
                    {"kind": "images", "split": split, "start": start, "count": len(chunk)},
                )
            )
            index += 1
    return pieces


def _labels_piece(ds: data_lib.DataSet) -> _Piece:
    y = np.concatenate([ds.y_train.numpy(), ds.y_test.numpy()]).astype(np.uint8)
    return _Piece("labels.u8", y.tobytes(), {"kind": "labels", "train": len(ds.y_train), "test": len(ds.y_test)})


# ---- checkpoints of unfinished runs ----------------------------------------------------------------
def _checkpoints(profile: Any, results: Path) -> list[Path]:
    """``checkpoint.pt`` of every planned run of ``profile`` under ``results/<profile>`` that has no record, in plan order."""
    from ..records import RECORD_FILE
    from ..study.plan import plan

    base = Path(results) / profile.name
    folders = [base / run.config.name for run in plan(profile)]
    return [f / "checkpoint.pt" for f in folders if (f / "checkpoint.pt").is_file() and not (f / RECORD_FILE).exists()]


def _resume_pieces(paths: list[Path], results: Path) -> list[_Piece]:
    if not paths:
        return []
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for p in paths:
            info = tar.gettarinfo(str(p), arcname=p.relative_to(results).as_posix())
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with open(p, "rb") as f:
                tar.addfile(info, f)
    blob = buf.getvalue()
    runs = [p.relative_to(results).as_posix() for p in paths]
    return [
        _Piece(
            f"resume.tar.{i:03d}", blob[start : start + RESUME_PIECE_BYTES], {"kind": "resume", "runs": runs if i == 0 else []}
        )
        for i, start in enumerate(range(0, len(blob), RESUME_PIECE_BYTES))
    ]


# ---- placing pieces --------------------------------------------------------------------------------
def _assign_groups(sizes: list[int], limit: int) -> list[int]:
    """Group number (1, 2, ...) of each piece, in order, each group's total at most ``limit`` bytes."""
    if sizes and max(sizes) > limit:
        raise PackError(
            f"a piece of {max(sizes) / MIB:.1f} MiB does not fit the {limit / MIB:.1f} MiB a call can carry beside the "
            "tree; make the tracked tree smaller"
        )
    groups, group, used = [], 1, 0
    for size in sizes:
        if used + size > limit:
            group, used = group + 1, 0
        groups.append(group)
        used += size
    return groups


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _reusable(old: dict[str, Any] | None, pack_dir: Path) -> list[_Piece] | None:
    """The image and label pieces of the earlier pack ``old`` in ``pack_dir``, if it has the same codec
    and all of them are present and intact."""
    if not old or old.get("version") != VERSION or old.get("codec") != _CODEC or _manifest_problem(old):
        return None
    kept = []
    for entry in old["pieces"]:
        if entry["kind"] == "resume":
            continue
        path = pack_dir / entry["group"] / entry["name"]
        content = path.read_bytes() if path.is_file() else b""
        if _sha256(content) != entry["sha256"]:
            return None
        kept.append(
            _Piece(entry["name"], content, {k: v for k, v in entry.items() if k not in ("name", "group", "bytes", "sha256")})
        )
    return kept


def pack(
    root: Path,
    *,
    data_dir: str | os.PathLike | None = None,
    profile: Any = None,
    results: Path | None = None,
    pack_dir: Path | None = None,
    limit: int | None = None,
    log=print,
) -> dict[str, Any]:
    """Write the pack of the checkout at ``root`` into ``pack_dir`` (default ``root/.device/pack``) and return its manifest.

    ``data_dir``: the verified CIFAR-10 (see :func:`elrt_core.data.load`); ``profile`` and
    ``results``: whose unfinished runs' checkpoints to add (none without a profile); ``limit``:
    bytes of pieces per group (default :func:`group_limit` of the tree measured now). Image pieces
    of an earlier pack with the same settings are reused when their checksums still match.
    """
    pack_dir = Path(pack_dir) if pack_dir else root / PACK_DIR
    old = _earlier(pack_dir)
    pieces = _reusable(old, pack_dir)
    if pieces is None:
        _require_webp()
        log(f"encoding CIFAR-10 from {data_dir or 'the default data folder'} into lossless WebP pieces")
        ds = data_lib.load("cifar10", data_dir, download=False)
        pieces = [_labels_piece(ds), *_image_pieces(ds)]
    else:
        log(f"reusing the {len(pieces)} image and label pieces in {pack_dir} (checksums match)")
    if profile is not None and results is not None:
        pieces += _resume_pieces(_checkpoints(profile, Path(results)), Path(results))
    tree = tree_bytes(root)
    limit = group_limit(tree) if limit is None else limit
    groups = _assign_groups([len(p.data) for p in pieces], limit)
    entries = [
        {"name": piece.name, "group": f"g{g}", "bytes": len(piece.data), "sha256": _sha256(piece.data), **piece.meta}
        for piece, g in zip(pieces, groups, strict=True)
    ]
    _place(pack_dir, [(e["group"], p) for e, p in zip(entries, pieces, strict=True)], _owned(old))
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "dataset": "cifar10",
        "codec": _CODEC,
        "pieces": entries,
        "binary_md5": dict(BINARY_MD5),
        "resume_profile": profile.name if profile is not None else None,
        "groups": [
            {"folder": f"g{g}", "bytes": sum(e["bytes"] for e in entries if e["group"] == f"g{g}")} for g in sorted(set(groups))
        ],
        "group_limit_bytes": limit,
        "tree_bytes": tree,
        "source": source.state(root),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    atomic.write_bytes(pack_dir / MANIFEST, (json.dumps(manifest, indent=1) + "\n").encode())
    return manifest


def _place(pack_dir: Path, placed: list[tuple[str, _Piece]], owned: set[tuple[str, str]]) -> None:
    """Write each ``(group, piece)`` into ``pack_dir/<group>/`` and remove the pieces of the earlier
    pack (``owned``: its ``(group, name)`` pairs) that are no longer placed. Only files the pack wrote
    are replaced or removed: another file where a piece goes is refused before anything is written."""
    changed = [(pack_dir / g / p.name, p) for g, p in placed if not _holds(pack_dir / g / p.name, p.data)]
    foreign = [t for t, _ in changed if (t.exists() or t.is_symlink()) and (t.parent.name, t.name) not in owned]
    if foreign:
        raise PackError(f"{foreign[0]} is not a piece of the pack in {pack_dir}: move it away, or give another --out")
    for target, piece in changed:
        atomic.write_bytes(target, piece.data)
    for group, name in owned - {(g, p.name) for g, p in placed}:
        (pack_dir / group / name).unlink(missing_ok=True)
    for folder in {pack_dir / g for g, _ in owned}:
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def _holds(path: Path, data: bytes) -> bool:
    return path.is_file() and not path.is_symlink() and path.read_bytes() == data


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def _earlier(pack_dir: Path) -> dict[str, Any] | None:
    """The manifest of the pack already in ``pack_dir`` (any version), ``None`` if there is none;
    :class:`PackError` if ``pack_dir`` holds a ``manifest.json`` that is not a pack's (it is not replaced)."""
    path = pack_dir / MANIFEST
    if not path.exists():
        return None
    manifest = _read(path)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise PackError(f"{path} is not the manifest of a pack: move it away, or give another --out")
    return manifest


def _owned(old: dict[str, Any] | None) -> set[tuple[str, str]]:
    """``(group, name)`` of the pieces the earlier pack ``old`` lists: the only files a new pack may replace or remove."""
    pieces = old.get("pieces") if old else None
    return {
        (e["group"], e["name"])
        for e in (pieces if isinstance(pieces, list) else [])
        if isinstance(e, dict) and _GROUP.fullmatch(str(e.get("group"))) and _PIECE_NAME.fullmatch(str(e.get("name")))
    }


def _manifest_problem(manifest: Any) -> str | None:
    """How ``manifest`` differs from the shape :func:`pack` writes (pieces, groups, source), or ``None``."""
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        return "is not a pack manifest" if isinstance(manifest, dict) else f"holds a {type(manifest).__name__}, not an object"
    pieces, groups = manifest.get("pieces"), manifest.get("groups")
    if not isinstance(pieces, list) or not isinstance(groups, list):
        return "has no list of 'pieces' and 'groups'"
    for i, e in enumerate(pieces):
        if not isinstance(e, dict):
            return f"has a piece entry {i} that is not an object"
        kind = e.get("kind")
        keys = {**_PIECE_KEYS, **(_KIND_KEYS.get(kind, {}) if isinstance(kind, str) else {})}
        bad = first_bad_key(e, keys)
        if bad is not None:
            return f"has a piece entry {i} without a valid {bad!r}"
        if e["kind"] not in _KIND_KEYS or not _PIECE_NAME.fullmatch(e["name"]) or not _GROUP.fullmatch(e["group"]):
            return f"names a piece {e['group']!r}/{e['name']!r} of kind {e['kind']!r} that no pack writes"
        if e["kind"] == "images" and e["split"] not in ("train", "test"):
            return f"has an image piece of split {e['split']!r}"
    if [e["kind"] for e in pieces].count("labels") != 1:
        return "does not list one labels piece"
    if not all(isinstance(g, dict) and isinstance(g.get("folder"), str) and _GROUP.fullmatch(g["folder"]) for g in groups):
        return "has a group entry without a folder g<N>"
    try:
        source.check(manifest.get("source"))
    except ValueError as e:
        return f"has no valid source state ({e})"
    return None


def read_manifest(pack_dir: Path) -> dict[str, Any]:
    """The manifest of the pack in ``pack_dir``; :class:`PackError` if it is missing, not a pack
    manifest, or not of the shape :func:`pack` writes."""
    path = Path(pack_dir) / MANIFEST
    manifest = _read(path)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise PackError(
            f"no pack manifest at {path}: run `elrt gpu pack` here, and carry {PACK_DIR / MANIFEST} in the device call"
        )
    if manifest.get("version") != VERSION:
        raise PackError(f"{path} is pack version {manifest.get('version')}; this code reads version {VERSION}")
    problem = _manifest_problem(manifest)
    if problem:
        raise PackError(f"{path} {problem}; run `elrt gpu pack` again and carry the new manifest")
    return manifest


def carry_plan(manifest: dict[str, Any], pack_dir: Path = PACK_DIR) -> list[list[str]]:
    """The ``carry`` list of each device call, in order: the manifest and one group folder each."""
    return [[str(pack_dir / MANIFEST), str(pack_dir / g["folder"])] for g in manifest["groups"]]


# ---- on the device ---------------------------------------------------------------------------------
def verify_pieces(pack_dir: Path, manifest: dict[str, Any]) -> dict[str, bytes]:
    """Every piece's content by name, each checked against the manifest's size and sha256; a
    :class:`PackError` names every missing or corrupted piece (and the group folders to carry)."""
    contents, problems, missing_groups = {}, [], set()
    for e in manifest["pieces"]:
        path = Path(pack_dir) / e["group"] / e["name"]
        if not path.is_file():
            problems.append(f"{e['group']}/{e['name']} is missing")
            missing_groups.add(e["group"])
            continue
        data = path.read_bytes()
        if len(data) != e["bytes"] or _sha256(data) != e["sha256"]:
            problems.append(
                f"{e['group']}/{e['name']} is corrupted (sha256 {_sha256(data)[:12]}..., {len(data)} bytes; "
                f"expected {e['sha256'][:12]}..., {e['bytes']} bytes)"
            )
            continue
        contents[e["name"]] = data
    if problems:
        hint = (
            f"; carry {', '.join(str(PACK_DIR / g) for g in sorted(missing_groups))}"
            if missing_groups
            else "; run `elrt gpu pack` again"
        )
        raise PackError("the pack is incomplete: " + "; ".join(problems) + hint)
    return contents


def binary_files(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray) -> dict[str, bytes]:
    """The official binary-version files from uint8 images (n, 3, 32, 32) and labels (n,): per image
    one label byte, then its 3072 CHW pixel bytes; training batch k holds images 10000(k-1) .. 10000k-1."""

    def records(x: np.ndarray, y: np.ndarray) -> bytes:
        out = np.empty((len(x), 1 + 3 * TILE * TILE), np.uint8)
        out[:, 0] = y
        out[:, 1:] = x.reshape(len(x), -1)
        return out.tobytes()

    files = {
        f"data_batch_{k}.bin": records(x_train[10000 * (k - 1) : 10000 * k], y_train[10000 * (k - 1) : 10000 * k])
        for k in range(1, 6)
    }
    files["test_batch.bin"] = records(x_test, y_test)
    return files


def _binary_layout_ok(folder: Path) -> bool:
    return all((folder / n).is_file() and hashlib.md5((folder / n).read_bytes()).hexdigest() == m for n, m in BINARY_MD5.items())


def _write_data(contents: dict[str, bytes], manifest: dict[str, Any], folder: Path) -> None:
    """Decode the image and label pieces and write the binary layout into ``folder``, md5-checked first."""
    _require_webp()
    images = {"train": [], "test": []}
    for e in manifest["pieces"]:
        if e["kind"] == "images":
            images[e["split"]].append((e["start"], _decode(contents[e["name"]], e["count"])))
    x = {k: np.concatenate([a for _, a in sorted(v, key=lambda t: t[0])]) for k, v in images.items()}
    labels = next(e for e in manifest["pieces"] if e["kind"] == "labels")
    y = np.frombuffer(contents[labels["name"]], np.uint8)
    files = binary_files(x["train"], y[: labels["train"]], x["test"], y[labels["train"] :])
    wrong = [n for n, data in files.items() if hashlib.md5(data).hexdigest() != BINARY_MD5.get(n)]
    if wrong or set(files) != set(BINARY_MD5):
        raise PackError(f"the decoded pieces do not give the official binary files (md5 differs for {', '.join(wrong)})")
    for name, data in files.items():
        atomic.write_bytes(folder / name, data)


def _extract_checkpoints(contents: dict[str, bytes], manifest: dict[str, Any], results: Path) -> tuple[list[str], list[str]]:
    """Unpack the resume pieces into ``results``; a run folder that already holds a record or a
    checkpoint keeps it. Returns (written, kept) member names."""
    blob = b"".join(contents[e["name"]] for e in manifest["pieces"] if e["kind"] == "resume")
    written, kept = [], []
    if not blob:
        return written, kept
    members = archive.read_members(blob, allowed=_CHECKPOINT_MEMBER, limit=len(blob), what="the resume pieces")
    for name, data in members.items():
        target = results / name
        if target.exists() or (target.parent / "record.json").exists():
            kept.append(name)
            continue
        atomic.write_bytes(target, data)
        written.append(name)
    return written, kept


def unpack(pack_dir: Path, data_out: Path, results: Path) -> dict[str, Any]:
    """Check the pack in ``pack_dir`` and write CIFAR-10 (binary layout) into ``data_out/cifar-10-batches-bin``
    and the checkpoints into ``results``; return what was done. Nothing is written unless every piece checks out."""
    manifest = read_manifest(pack_dir)
    contents = verify_pieces(pack_dir, manifest)
    folder = Path(data_out) / "cifar-10-batches-bin"
    reused = _binary_layout_ok(folder)
    if not reused:
        _write_data(contents, manifest, folder)
    written, kept = _extract_checkpoints(contents, manifest, Path(results))
    return {
        "data": data_lib.check(data_out),
        "data_reused": reused,
        "checkpoints_written": written,
        "checkpoints_kept": kept,
        "source": manifest["source"],
    }
