"""Which runs a profile trains, in which order, and which of them each chapter compares.

The single source of run configs: :func:`plan` expands the profile's run groups into
:class:`PlannedRun` s, ordered by (priority, seed, group, method) so that a budget of compute spent
from the top gives every comparison of a priority the same number of seeds. Chapters pick their
runs with :func:`select` and :func:`comparison`; nothing else builds a config.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..config import TrainConfig
from ..profiles import Profile, load, methods, names
from ..records import RECORD_FILE, Record, scan
from ..train.checkpoint import CHECKPOINT_FILE, WEIGHTS_FILE

__all__ = [
    "PlannedRun",
    "plan",
    "select",
    "comparison",
    "lender",
    "approximation_run",
    "networks",
    "status",
    "dense_to_retrain",
    "epochs_left",
]


@dataclass(frozen=True)
class PlannedRun:
    """A run of a profile: its ``priority``, ``method`` key, the method's readable ``label``, and its config."""

    priority: int
    method: str
    label: str
    config: TrainConfig

    @property
    def network(self) -> tuple[str, float | None]:
        """``(model, flops_ratio)``; the ratio is ``None`` for dense runs."""
        return self.config.model, self.config.flops_ratio


def plan(p: Profile, max_priority: int | None = None, only: Iterable[str] | None = None) -> list[PlannedRun]:
    """Every run of ``p`` (up to ``max_priority``; of the methods in ``only`` if given) in training
    order, each config once. An empty ``only``, or a name in it that no run group of ``p`` trains, is a
    ``ValueError``."""
    labels = {k: m.label for k, m in methods().items()}
    if only is not None:
        if isinstance(only, str):
            raise TypeError(f"only: a list of method names, not the string {only!r}")
        only, trained = set(only), {m for group in p.runs for m in group.methods}
        if not only:
            raise ValueError(f"no method named; profile {p.name!r} trains {', '.join(sorted(trained))}")
        if only - trained:
            raise ValueError(
                f"profile {p.name!r} trains no {', '.join(sorted(only - trained))}; its methods: {', '.join(sorted(trained))}"
            )
    keyed = []
    for gi, group in enumerate(p.runs):
        if max_priority is not None and group.priority > max_priority:
            continue
        for seed in group.seeds:
            for mi, method in enumerate(group.methods):
                if only is not None and method not in only:
                    continue
                config = p.config(method, group.model, group.flops_ratio, seed)
                keyed.append(((group.priority, seed, gi, mi), PlannedRun(group.priority, method, labels[method], config)))
    seen, out = set(), []
    for _, run in sorted(keyed, key=lambda kv: kv[0]):
        if run.config.hash not in seen:
            seen.add(run.config.hash)
            out.append(run)
    return out


def select(
    runs: list[PlannedRun],
    *,
    model: str | None = None,
    flops_ratio: float | None = None,
    methods: tuple[str, ...] | list[str] | None = None,
) -> list[PlannedRun]:
    """The runs of ``model`` at ``flops_ratio`` (dense runs match any ratio) among ``methods``, in
    the order of ``methods`` (then seed)."""
    chosen = [
        r
        for r in runs
        if (model is None or r.config.model == model)
        and (flops_ratio is None or r.config.flops_ratio in (None, flops_ratio))
        and (methods is None or r.method in methods)
    ]
    if methods is not None:
        order = {m: i for i, m in enumerate(methods)}
        chosen.sort(key=lambda r: (order[r.method], r.config.seed))
    return chosen


def comparison(p: Profile, key: str) -> list[PlannedRun]:
    """The planned runs of comparison ``key`` of ``p`` (reference first), on its network."""
    c = p.comparisons[key]
    return select(plan(p), model=c.model, flops_ratio=c.flops_ratio, methods=(c.reference, *c.methods))


def lender(p: Profile, key: str, root: Path | None = None) -> Profile | None:
    """The profile whose runs comparison ``key`` shows in a book of ``p``: ``p`` itself if its plan trains
    a compared (non-reference) method of ``key``, else the first profile of ``profiles.yaml`` whose plan
    does (e.g. the λ sensitivity check, trained only at the quick scale), never the test-only ``smoke``
    profile for another; ``None`` if none does. With ``root`` (the results folder), a profile whose
    compared methods do not all have a finished run under ``root/<profile>`` yet gives way to the next
    one that has them, so a check still being trained does not hide one already done; if none has them,
    the first as above."""
    compared = set(p.comparisons[key].methods)
    candidates = [
        c for c in [p, *(load(n) for n in names() if n not in (p.name, "smoke"))] if compared & {r.method for r in plan(c)}
    ]
    if root is not None:
        for candidate in candidates:
            finished = {r.config_hash for r in scan(Path(root) / candidate.name)[0] if r.finished}
            runs = [r for r in comparison(candidate, key) if r.method in compared]
            if {r.method for r in runs} == compared and all(
                any(r.config.hash in finished for r in runs if r.method == m) for m in compared
            ):
                return candidate
    return candidates[0] if candidates else None


def networks(p: Profile) -> list[tuple[str, float]]:
    """``(model, flops_ratio)`` of every low-rank network the profile trains, in plan order."""
    return list(dict.fromkeys(r.network for r in plan(p) if r.config.flops_ratio is not None))


def approximation_run(p: Profile) -> PlannedRun:
    """The dense run whose trained kernels Figure 3 analyses: the lowest seed of the approximation model."""
    dense = sorted(select(plan(p), model=p.approximation.model, methods=("dense",)), key=lambda r: r.config.seed)
    if not dense:
        raise ValueError(f"profile {p.name!r} trains no dense {p.approximation.model} for the approximation analysis")
    return dense[0]


def status(record: Record | None, folder: Path) -> str:
    """The status of a planned run: ``done`` or ``diverged`` by its ``record`` (found by config hash),
    else by what its run ``folder`` holds: ``unusable record`` (a record file that cannot be used, which
    the record lookup reports), ``partial (checkpoint)`` or ``missing``."""
    if record is not None:
        return "done" if record.finished else "diverged"
    if (folder / RECORD_FILE).exists():
        return "unusable record"
    return "partial (checkpoint)" if (folder / CHECKPOINT_FILE).exists() else "missing"


def dense_to_retrain(config: TrainConfig, found: Mapping[str, Record]) -> Record | None:
    """The finished dense run that the compression run ``config`` decomposes (``init ==
    "decompose:<hash>"``) when its ``weights.pt`` was not kept (its record alone was committed): it is
    trained again with ``elrt train --force`` before ``config`` can run. ``None`` for any other run, when
    the weights are there, or when ``found`` (config hash -> finished record) lacks the dense run (the
    plan trains it first)."""
    dense = found.get(config.decomposes) if config.decomposes else None
    return dense if dense is not None and dense.finished and not (dense.path / WEIGHTS_FILE).exists() else None


def epochs_left(runs: Iterable[PlannedRun], found: Mapping[str, Record], retrained: set[str] | None = None) -> int:
    """The epochs still to train for ``runs``: those of each run ``found`` (config hash -> finished or
    diverged record; a diverged run is never retrained) lacks, and once those of each dense run to train
    again for its weights (:func:`dense_to_retrain`); ``retrained`` collects the config hashes of those
    dense runs across calls, so a dense run two calls share counts once."""
    retrained = set() if retrained is None else retrained
    epochs = 0
    for run in runs:
        if run.config.hash in found:
            continue
        epochs += run.config.epochs
        dense = dense_to_retrain(run.config, found)
        if dense is not None and dense.config_hash not in retrained:
            retrained.add(dense.config_hash)
            epochs += dense.config.epochs
    return epochs
