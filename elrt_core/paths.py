"""Where the project lives: its root folder (notebooks, book, results) and its results folder.

The library may be installed without ``-e`` (then the package sits in site-packages, far from the
study), so the project root is found from where the user works: ``$ELRT_ROOT`` if set, else the
nearest folder at or above the working directory that holds the study (``_toc.yml`` and
``notebooks/``), else the folder above the package (an editable install or a source checkout).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["project_root", "results_root", "is_project", "RESULTS_FOLDER"]

_PACKAGE_PARENT = Path(__file__).resolve().parents[1]

RESULTS_FOLDER = "results"
"""The project's tracked folder of run and bench records, relative to its root."""


def is_project(folder: Path) -> bool:
    """Whether ``folder`` holds the study (its table of contents and its notebooks)."""
    return (folder / "_toc.yml").is_file() and (folder / "notebooks").is_dir()


def project_root() -> Path:
    """The study's root folder (see the module docstring); ``FileNotFoundError`` naming what to do if none."""
    if os.environ.get("ELRT_ROOT"):
        root = Path(os.environ["ELRT_ROOT"]).resolve()
        if not is_project(root):
            raise FileNotFoundError(f"$ELRT_ROOT={root} does not hold the study (_toc.yml and notebooks/)")
        return root
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if is_project(folder):
            return folder
    if is_project(_PACKAGE_PARENT):
        return _PACKAGE_PARENT
    raise FileNotFoundError(
        f"no ELRT study at or above {here}: run elrt inside a clone of the study, or pass --root (or set $ELRT_ROOT)"
    )


def results_root(root: str | os.PathLike | None = None) -> Path:
    """Where run records live: ``root``, else ``$ELRT_RESULTS``, else ``<project root>/results``."""
    if root:
        return Path(root)
    if os.environ.get("ELRT_RESULTS"):
        return Path(os.environ["ELRT_RESULTS"])
    return project_root() / RESULTS_FOLDER
