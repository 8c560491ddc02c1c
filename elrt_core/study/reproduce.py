"""``elrt reproduce``: train the missing runs of a profile, then execute the notebooks with papermill.

A chapter is written atomically: papermill executes the notebook into a temporary folder, the
executed copy gets the completion mark (notebook metadata :data:`COMPLETE`) and only then replaces the
chapter in the output folder, so an interrupted or killed ``reproduce`` leaves the previous chapter or
none, never a partial one. :func:`is_complete` tells a chapter with the mark from one without.
"""

from __future__ import annotations

import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from tqdm import tqdm

from .. import atomic
from ..paths import project_root
from ..profiles import Profile, regime
from . import batch
from . import plan as plan_lib

__all__ = [
    "run",
    "selected",
    "chapter_runs",
    "NOTEBOOKS",
    "COMPLETE",
    "notebook_dir",
    "output_dir",
    "execute_notebook",
    "is_complete",
]

NOTEBOOKS = {
    "01_approximation_error": ("approximation",),
    "02_orthogonality_on_off": ("orthogonality",),
    "03_regularizer_comparison": ("regularizers", "sensitivity", "controls"),
    "04_main_results": ("main",),
    "05_provenance": (),
    "06_efficiency": ("rank_rule",),
    "07_training_length": ("regime",),
}
"""Notebook name -> the comparisons (of the profile's ``comparisons``) whose runs it reads."""


def notebook_dir() -> Path:
    return project_root() / "notebooks"


def output_dir() -> Path:
    """Executed notebooks go to ``book/generated`` (git-ignored; the book's chapters)."""
    return project_root() / "book" / "generated"


MARKER = ".elrt-reproduce"
"""File that marks a folder of executed notebooks written by :func:`run`."""
COMPLETE = "elrt_complete"
"""Notebook metadata key set to ``true`` in a chapter whose every cell ran (:func:`execute_notebook`)."""


def is_complete(chapter: Path) -> bool:
    """Whether the executed notebook ``chapter`` carries the completion mark of :func:`execute_notebook`."""
    import nbformat

    try:
        return nbformat.read(chapter, as_version=4).metadata.get(COMPLETE) is True
    except (OSError, ValueError, AttributeError):  # unreadable, not JSON, not a notebook
        return False


def remove_old_chapters(out_dir: Path, *, incomplete_only: bool = False) -> None:
    """Remove the executed chapters of an earlier build from ``out_dir`` (see :func:`run`); with
    ``incomplete_only``, only those without the completion mark (:func:`is_complete`)."""
    owned = (out_dir / MARKER).exists() or out_dir.resolve() == output_dir().resolve()
    for path in out_dir.glob("[0-9][0-9]_*.ipynb"):
        if (owned or path.stem in NOTEBOOKS) and not (incomplete_only and is_complete(path)):
            path.unlink()


def chapter_runs(profile: Profile, names: list[str]) -> list[plan_lib.PlannedRun]:
    """The planned runs the notebooks ``names`` read, in plan order."""
    wanted: set[str] = set()
    everything = plan_lib.plan(profile)
    for name in names:
        for key in NOTEBOOKS[name]:
            if key == "approximation":
                wanted.add(plan_lib.approximation_run(profile).config.hash)
            elif key == "regime":  # every run of the regime network (the other profiles' runs are read, not trained)
                axis = regime()
                wanted |= {
                    r.config.hash
                    for r in everything
                    if r.config.model == axis.model and r.config.flops_ratio in (None, axis.flops_ratio)
                }
            elif key == "main":
                main = profile.comparisons["main"]
                wanted |= {r.config.hash for r in plan_lib.select(everything, methods=(main.reference, *main.methods))}
            else:
                wanted |= {r.config.hash for r in plan_lib.comparison(profile, key)}
    return [r for r in everything if r.config.hash in wanted]


def execute_notebook(name: str, parameters: dict, out_dir: Path) -> Path:
    """Run ``notebooks/<name>.ipynb`` with papermill and write the executed copy, with the completion
    mark, to ``out_dir`` atomically (see the module docstring); returns its path.

    Where pyzmq has CurveZMQ, the kernel gets keys if its kernelspec supports them (jupyter_client's
    ``transport_encryption="auto"``), so ipykernel does not warn about unencrypted TCP on every chapter.
    The kernel is shut down without the interrupt jupyter_client sends first (:mod:`.kernels`)."""
    import nbformat
    import papermill as pm
    import zmq
    from traitlets.config import Config

    from .kernels import ChapterKernelManager

    encryption = {"KernelManager": {"transport_encryption": "auto"}} if zmq.has("curve") else {}

    target = out_dir / f"{name}.ipynb"
    with tempfile.TemporaryDirectory(prefix=f"elrt-{name}-") as tmp:
        executed = Path(tmp) / target.name
        pm.execute_notebook(
            str(notebook_dir() / f"{name}.ipynb"),
            str(executed),
            parameters=parameters,
            kernel_name="python3",
            progress_bar=False,
            cwd=str(notebook_dir()),
            config=Config(encryption),
            kernel_manager_class=ChapterKernelManager,
        )
        nb = nbformat.read(executed, as_version=4)
        nb.metadata[COMPLETE] = True
        atomic.write_text(target, nbformat.writes(nb))
    return target


def selected(only: list[str] | None) -> list[str]:
    if not only:
        return list(NOTEBOOKS)
    names = [n for n in NOTEBOOKS if n in only or n.split("_", 1)[0] in only]
    unknown = [o for o in only if not any(o in (n, n.split("_", 1)[0]) for n in NOTEBOOKS)]
    if unknown:
        raise ValueError(f"unknown notebook {unknown}; allowed: {', '.join(NOTEBOOKS)} (or their numbers)")
    return names


def run(
    profile: Profile,
    *,
    only: list[str] | None = None,
    jobs: int = 1,
    reuse_only: bool = False,
    train_only: bool = False,
    device: str = "auto",
    data_dir: str | None = None,
    out: Path | None = None,
) -> int:
    """Exit status 0 when every selected notebook ran; 1 naming the ones that failed.

    Executed notebooks are written to ``out`` (default :func:`output_dir`, the book's chapters). When
    every notebook is selected, the chapters of an earlier build there are removed first, so that none is
    published as current: the :data:`NOTEBOOKS` names, and in a folder this function created (it then
    writes :data:`MARKER` into it) or the default folder, every ``NN_*.ipynb``, which catches renamed
    chapters; with ``only``, just those of them without the completion mark (:func:`is_complete`). Nothing
    else is touched, and ``out`` may not be the source notebooks' folder.
    """
    names = selected(only)
    out_dir = Path(out) if out else output_dir()
    if out_dir.resolve() == notebook_dir().resolve():
        raise ValueError(f"the executed notebooks cannot overwrite their sources in {out_dir}; choose another folder")
    if not reuse_only:
        report = batch.run(profile, runs=chapter_runs(profile, names), jobs=1, device=device, data_dir=data_dir)
        if not report.ok:
            return 1
    if train_only:
        return 0
    params = {"profile": profile.name, "train_missing": False, "device": device, "data_dir": data_dir or ""}
    remove_old_chapters(out_dir, incomplete_only=bool(only))  # with --only, the other chapters stay if complete
    if not out_dir.exists():  # a folder it creates holds only what it writes
        out_dir.mkdir(parents=True)
        (out_dir / MARKER).write_text("a folder created by `elrt reproduce` for executed notebooks\n")
    failures: dict[str, str] = {}
    pool = ProcessPoolExecutor(max_workers=jobs) if jobs > 1 else None
    try:
        pending = {name: pool.submit(execute_notebook, name, params, out_dir) if pool else None for name in names}
        for name, fut in tqdm(pending.items(), desc="notebooks", disable=not sys.stderr.isatty()):
            try:
                fut.result() if fut else execute_notebook(name, params, out_dir)
                print(f"ok      {name} -> {out_dir / (name + '.ipynb')}")
            except Exception as e:  # papermill raises PapermillExecutionError with the cell's traceback
                (out_dir / f"{name}.ipynb").unlink(missing_ok=True)  # nor is the previous build's copy of a failed chapter
                first = str(e).strip().splitlines()
                failures[name] = first[-1] if first else type(e).__name__
                print(f"FAILED  {name}: {failures[name]}", file=sys.stderr)
    finally:
        if pool:
            pool.shutdown()
    if failures:
        print(f"elrt reproduce: {len(failures)} notebook(s) failed: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0
