"""Packaging: ranges in pyproject.toml, the exact study environment in constraints.txt and
environment.yml (the same pins), an SPDX license with its file, and every data file packaged."""

import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def _pins(lines):
    out = {}
    for line in lines:
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"not an exact pin: {line!r}"
            out[name.strip().lower()] = version.strip()
    return out


def _project():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_constraints_and_environment_yml_pin_the_same_versions():
    constraints = _pins((ROOT / "constraints.txt").read_text().splitlines())
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert _pins(pip_section) == constraints


def test_the_library_declares_ranges_that_admit_the_pinned_versions():
    constraints = _pins((ROOT / "constraints.txt").read_text().splitlines())
    project = _project()
    declared = project["dependencies"] + [d for extra in project["optional-dependencies"].values() for d in extra]
    for text in declared:
        req = Requirement(text)
        assert not any(spec.operator == "==" for spec in req.specifier), f"{text}: the library pins nothing exactly"
        assert req.name.lower() in constraints, f"{req.name} has no pin in constraints.txt"
        assert req.specifier.contains(constraints[req.name.lower()]), (
            f"{text} excludes the pinned {constraints[req.name.lower()]}"
        )
    assert set(constraints) == {Requirement(t).name.lower() for t in declared}


def test_spdx_license_with_its_file_and_packaged_data():
    project = _project()
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    packaged = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["elrt_core"])
    assert packaged == {p.name for p in (ROOT / "elrt_core").glob("*.yaml")}
    assert "constraints.txt" in (ROOT / "Makefile").read_text()
    assert re.search(r"pip install -q -c constraints.txt -e '\.\[dev,bench\]'", (ROOT / "Makefile").read_text())
