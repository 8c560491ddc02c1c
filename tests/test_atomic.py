"""Atomic writes (elrt_core.atomic): complete file or the old one, never a half-written file."""

from __future__ import annotations

import stat

import pytest

from elrt_core import atomic


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_write_creates_folders_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "a" / "b" / "table.csv"
    assert atomic.write_text(target, "x,y\n1,2\n") == target
    assert target.read_text() == "x,y\n1,2\n"
    assert _mode(target) == 0o644
    assert [p.name for p in target.parent.iterdir()] == ["table.csv"]


def test_write_replaces_an_existing_file(tmp_path):
    target = tmp_path / "blob.bin"
    target.write_bytes(b"old")
    target.chmod(0o600)
    atomic.write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert _mode(target) == 0o644


def test_an_error_in_the_body_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    target = tmp_path / "record.json"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="disk full"), atomic.replacing(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["record.json"]


def test_the_target_is_untouched_until_the_body_ends(tmp_path):
    target = tmp_path / "weights.pt"
    target.write_bytes(b"old")
    with atomic.replacing(target) as tmp:
        tmp.write_bytes(b"new")
        assert target.read_bytes() == b"old"
        assert tmp.parent == tmp_path and tmp.name.startswith(".weights.pt.")
    assert target.read_bytes() == b"new"


def test_two_writers_of_one_target_get_different_temporary_files(tmp_path):
    target = tmp_path / "manifest.json"
    with atomic.replacing(target) as first, atomic.replacing(target) as second:
        assert first != second
        first.write_text("first")
        second.write_text("second")
    assert target.read_text() == "first"  # the outer context exits last
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]
