"""Verdict sentences computed from the data (never typed by hand)."""

from __future__ import annotations

from statistics import mean

import pandas as pd

from .figures import FORMAT_LABELS
from .tables import finals_frame

__all__ = ["format_wins", "format_verdict", "difference_verdict", "ranking", "approximation", "on_off", "seed_range", "best_regularizer", "main_results"]


def format_wins(df: pd.DataFrame, fmt: str = "tucker2", against: tuple[str, ...] = ("matrix", "spatial")) -> tuple[int, int]:
    """``(wins, layers)``: in how many layers ``fmt`` has a lower relative error than every format in ``against``."""
    table = df.pivot_table(index="layer", columns="format", values="rel_error")
    wins = (table[fmt] < table[list(against)].min(axis=1)).sum()
    return int(wins), len(table)


def format_verdict(df: pd.DataFrame, ratio: float, fmt: str = "tucker2", against: tuple[str, ...] = ("matrix", "spatial")) -> str:
    """E.g. "At 2x fewer MACs per layer, Tucker-2 has a lower relative error than matrix rank in 14
    of 18 layers and than spatial in 3 of 18 (mean relative error: ...)": one count per opponent."""
    part = df[df["ratio"] == ratio]
    counts = {a: format_wins(part, fmt, (a,)) for a in against}
    pairs = [f"than {FORMAT_LABELS[a]} in {wins} of {n} layers" for a, (wins, n) in counts.items()]
    means = part.groupby("format")["rel_error"].mean()
    others = "; ".join(f"{FORMAT_LABELS[a]} {means[a]:.3f}" for a in against)
    return (
        f"At {ratio:g}x fewer MACs per layer, {FORMAT_LABELS[fmt]} has a lower relative error "
        f"{' and '.join(pairs)} (mean relative error: {FORMAT_LABELS[fmt]} {means[fmt]:.3f}; {others})."
    )


def difference_verdict(label_a: str, values_a: list[float], label_b: str, values_b: list[float], unit: str = "points") -> str:
    """Compare mean final accuracies of two groups; says how many seeds back each mean."""
    a, b = mean(values_a), mean(values_b)
    n = min(len(values_a), len(values_b))
    spread = ""
    if n > 1:
        span = max(max(values_a) - min(values_a), max(values_b) - min(values_b))
        spread = f"; the seed-to-seed range is up to {span:.2f} {unit}"
    else:
        spread = "; one seed per setting, so a difference of a few tenths of a point may be noise"
    direction = "higher" if b > a else "lower" if b < a else "equal"
    return (
        f"{label_b}: {b:.2f}% vs {label_a}: {a:.2f}% final test top-1 "
        f"({b - a:+.2f} {unit}, {direction}; mean of {len(values_b)} and {len(values_a)} seed(s){spread})."
    )


def ranking(df: pd.DataFrame, by: str = "final_top1", label: str = "method") -> str:
    """Methods ordered by ``by``, best first, as one sentence."""
    ordered = df.sort_values(by, ascending=False)
    return "; ".join(f"{row[label]} {row[by]:.2f}%" for _, row in ordered.iterrows()) + "."


def approximation(frames: dict[str, pd.DataFrame]) -> dict[str, str]:
    """Glue keys -> sentences for the approximation chapter: ``approx_<kind>_<ratio>x`` (full
    sentence) and ``approx_<kind>_<ratio>x_wins`` ("N of M") for every kind of weights and ratio."""
    out = {}
    for kind, frame in frames.items():
        for ratio in sorted(frame["ratio"].unique()):
            wins, layers = format_wins(frame[frame["ratio"] == ratio])
            out[f"approx_{kind}_{ratio:g}x"] = format_verdict(frame, ratio)
            out[f"approx_{kind}_{ratio:g}x_wins"] = f"{wins} of {layers}"
    return out


def on_off(runs, history: pd.DataFrame) -> tuple[str, str]:
    """Accuracy and final-training-loss sentences for the regularizer on/off comparison; with
    several seeds, also in how many seeds (paired: same seed, same ranks) the regularizer wins."""
    finals: dict[str, dict[int, float]] = {}
    for run, rec in runs:
        finals.setdefault(run.method, {})[run.config.seed] = rec.metrics["final_test_top1"]
    with_reg = next(m for m in finals if m != "none")
    accuracy = difference_verdict("without regularizer", list(finals["none"].values()), with_reg, list(finals[with_reg].values()))
    paired = sorted(set(finals["none"]) & set(finals[with_reg]))
    if len(paired) > 1:
        wins = sum(finals[with_reg][k] > finals["none"][k] for k in paired)
        gaps = ", ".join(f"{finals[with_reg][k] - finals['none'][k]:+.2f}" for k in paired)
        accuracy += f" Seed by seed, {with_reg} is higher in {wins} of {len(paired)} seeds ({gaps} points)."
    last = history[history["epoch"] == history["epoch"].max()].groupby("method")["train_loss"].mean()
    loss = f"Final training loss: {with_reg} {last[with_reg]:.4f} vs none {last['none']:.4f}."
    return accuracy, loss


def seed_range(runs) -> float | None:
    """Largest max - min of final top-1 over the seeds of one method (None if no method has 2 seeds)."""
    finals = finals_frame(runs).groupby("method")["final_test_top1"]
    spans = (finals.max() - finals.min())[finals.size() > 1]
    return float(spans.max()) if not spans.empty else None


def best_regularizer(summary: pd.DataFrame, noise: float | None = None) -> str:
    """Which regularized setting has the best mean final top-1, by how much it beats none and the
    runner-up, and (``noise``: a seed-to-seed range measured elsewhere, in points) whether that
    lead is larger than the noise."""
    regs = summary[summary["method"] != "none"].sort_values("final_top1", ascending=False)
    best, second = regs.iloc[0], regs.iloc[1]
    none = summary.loc[summary["method"] == "none", "final_top1"].item()
    lead = best["final_top1"] - second["final_top1"]
    text = (f"The best regularizer is {best['method']} with {best['final_top1']:.2f}% final test top-1 "
            f"({best['final_top1'] - none:+.2f} points over no regularizer, {none:.2f}%; "
            f"{lead:.2f} points ahead of {second['method']}, {int(best['seeds'])} seed(s) each).")
    if noise is not None:
        resolved = "larger" if lead > noise else "smaller"
        text += (f" The lead is {resolved} than the seed-to-seed range of {noise:.2f} points measured in the "
                 f"on/off comparison, so the ranking of the regularizers {'stands' if lead > noise else 'is not resolved'} at this scale.")
    return text


def main_results(summary: pd.DataFrame) -> str:
    """Per model and FLOPs reduction: the best low-rank method, ELRT, and the gap to dense."""
    sentences = []
    lowrank = summary[summary["target_reduction"] > 1]
    for (model, target), group in lowrank.groupby(["model", "target_reduction"]):
        dense = summary[(summary["model"] == model) & (summary["method"] == "dense")]["final_top1"].item()
        best = group.sort_values("final_top1", ascending=False).iloc[0]
        elrt = group[group["method"].str.startswith("ELRT")].iloc[0]
        sentences.append(
            f"{model} at {target:g}x fewer FLOPs: the best low-rank method is {best['method']} "
            f"({best['final_top1']:.2f}%); ELRT {elrt['final_top1']:.2f}% vs dense {dense:.2f}% "
            f"({elrt['final_top1'] - dense:+.2f} points)."
        )
    return " ".join(sentences)
