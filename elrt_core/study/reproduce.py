"""``elrt reproduce``: train the missing runs of a profile, then execute the notebooks with papermill."""

from __future__ import annotations

import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tqdm import tqdm

from ..profiles import Profile
from ..paths import project_root
from . import plan as plan_lib
from .runs import get_or_run

__all__ = ["run", "train_missing", "NOTEBOOKS", "notebook_dir", "output_dir", "execute_notebook"]

NOTEBOOKS = {
    "01_approximation_error": ("approximation",),
    "02_orthogonality_on_off": ("orthogonality",),
    "03_regularizer_comparison": ("regularizers",),
    "04_main_results": ("main",),
    "05_provenance": (),
    "06_efficiency": (),
}
"""Notebook name -> the plan parts whose runs it reads."""


def notebook_dir() -> Path:
    return project_root() / "notebooks"


def output_dir() -> Path:
    """Executed notebooks go to ``book/generated`` (git-ignored; the book's chapters)."""
    return project_root() / "book" / "generated"


def execute_notebook(name: str, parameters: dict, out_dir: Path) -> Path:
    """Run ``notebooks/<name>.ipynb`` with papermill, writing the executed copy to ``out_dir``."""
    import papermill as pm

    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{name}.ipynb"
    pm.execute_notebook(
        str(notebook_dir() / f"{name}.ipynb"), str(target), parameters=parameters, kernel_name="python3",
        progress_bar=False, cwd=str(notebook_dir()),
    )
    return target


def _selected(only: list[str] | None) -> tuple[list[str], tuple[str, ...]]:
    if not only:
        return list(NOTEBOOKS), plan_lib.PARTS
    names = [n for n in NOTEBOOKS if n in only or n.split("_", 1)[0] in only]
    parts = tuple(p for p in plan_lib.PARTS if p in only or any(p in NOTEBOOKS[n] for n in names))
    unknown = [o for o in only if o not in NOTEBOOKS and o not in plan_lib.PARTS and not any(n.startswith(o + "_") for n in NOTEBOOKS)]
    if unknown:
        raise ValueError(f"unknown notebook or part {unknown}; allowed: {', '.join([*NOTEBOOKS, *plan_lib.PARTS])}")
    if not names:
        names = [n for n in NOTEBOOKS if set(NOTEBOOKS[n]) & set(parts)]
    return names, parts


def train_missing(profile: Profile, parts: tuple[str, ...], *, device: str, data_dir: str | None, root=None) -> None:
    """Train, in plan order, every run of ``parts`` that has no finished record (resuming partial ones)."""
    for part in plan_lib.PARTS:
        if part not in parts:
            continue
        runs = plan_lib.plan(profile, (part,), root)
        for i, run in enumerate(runs):
            tqdm.write(f"[{part} {i + 1}/{len(runs)}] {run.config.name}")
            get_or_run(run.config, profile.name, root=root, device=device, data_dir=data_dir)


def run(profile: Profile, *, only: list[str] | None = None, jobs: int = 1, reuse_only: bool = False,
        train_only: bool = False, device: str = "auto", data_dir: str | None = None, out: Path | None = None) -> int:
    """Exit status 0 when every selected notebook ran; 1 naming the ones that failed.

    Executed notebooks are written to ``out`` (default :func:`output_dir`, the book's chapters).
    """
    names, parts = _selected(only)
    if not reuse_only:
        train_missing(profile, parts, device=device, data_dir=data_dir)
    if train_only:
        return 0
    params = {"profile": profile.name, "train_missing": False, "device": device,
              "data_dir": data_dir or os.environ.get("ELRT_DATA_DIR") or ""}
    out_dir = Path(out) if out else output_dir()
    failures: dict[str, str] = {}
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = {name: pool.submit(execute_notebook, name, params, out_dir) for name in names}
        for name, fut in tqdm(futures.items(), desc="notebooks", disable=not sys.stderr.isatty()):
            try:
                fut.result()
                print(f"ok      {name} -> {out_dir / (name + '.ipynb')}")
            except Exception as e:  # papermill raises PapermillExecutionError with the cell's traceback
                first = str(e).strip().splitlines()
                failures[name] = first[-1] if first else type(e).__name__
                print(f"FAILED  {name}: {failures[name]}", file=sys.stderr)
    if failures:
        print(f"elrt reproduce: {len(failures)} notebook(s) failed: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0

