"""What a bench record measured, in a few readable lines (``elrt bench`` prints this)."""

from __future__ import annotations

from typing import Any

from ..machine_load import busy, quiet_limit
from .targets import checks, levels

__all__ = ["summary"]


def summary(result: dict[str, Any]) -> str:
    """What a bench record measured, in a few readable lines (``elrt bench`` prints this), and a
    warning when other processes kept the machine busy meanwhile (:mod:`elrt_core.machine_load`)."""
    text = _measured(result)
    if busy(result["provenance"]):
        text += (
            f"\nwarning: other processes kept {result['provenance']['background_load_cores']:.2f} cores busy on average "
            f"during this measurement (quiet: at most {quiet_limit():g}); its times measure the sharing, and claim 5 "
            "does not judge it. Measure again on an idle machine."
        )
    return text


def _measured(result: dict[str, Any]) -> str:
    if result["kind"] == "reference":
        t = result["train_step_ms"]
        return (
            f"{result['model']} tucker2 {result['macs_ratio']:.2f}x fewer MACs, {result['variant']}: training step dense "
            f"{t['dense']:.1f} ms, ours {t['ours']:.1f} ms ({result['ours_vs_dense']:.2f}x of dense speed), "
            f"{result['reference']} {t['reference']:.1f} ms ({result['reference_vs_dense']:.2f}x); ours is "
            f"{result['ours_vs_reference']:.2f}x the reference's speed"
        )
    if result["kind"] == "layer_times":
        lines = [
            f"{r['in_channels']}->{r['out_channels']} {r['kernel'][0]}x{r['kernel'][1]} stride {r['stride'][0]} "
            f"on {r['in_hw'][0]}x{r['in_hw'][1]} (x{r['layers']}): ranks {r['ranks']} {r['macs_ratio']:.2f}x fewer MACs, "
            f"{r['dense_ms']:.2f} -> {r['lowrank_ms']:.2f} ms ({r['speedup']:.2f}x); aligned ranks {r['aligned_ranks']} "
            f"{r['aligned_macs_ratio']:.2f}x fewer MACs, {r['aligned_ms']:.2f} ms ({r['aligned_speedup']:.2f}x)"
            for r in result["rows"]
        ]
        t = result["totals"]
        lines.append(
            f"all converted layers: {t['macs_ratio']:.2f}x fewer MACs, {t['speedup']:.2f}x faster; "
            f"aligned ranks: {t['aligned_macs_ratio']:.2f}x fewer MACs, {t['aligned_speedup']:.2f}x faster"
        )
        return "\n".join(lines)
    if result["kind"] == "rank_table":
        n = sum(len(x["candidates"]) for x in result["shapes"])
        return (
            f"timing table {result['table_id']}: {len(result['shapes'])} layer shapes of {result['model']}, "
            f"{n} {result['format']} rank candidates, on {result['provenance']['device_name']}; "
            f"use it with rank_rule 'hw:{result['table_id']}'"
        )
    if result["kind"] == "regularizer_overhead":
        return "\n".join(
            f"{row['regularizer']:>5} on {row['on']}: {row['step_ms']:.1f} ms/step ({row['overhead_pct']:+.1f}%); "
            f"penalty alone {row['penalty_ms']:.2f} ms ({row['penalty_pct']:.2f}% of the unregularized step)"
            for row in result["rows"]
        )
    return _speedup_text(result)


def _mb(n: int | None) -> str:
    return "not measured" if n is None else f"{n / 1e6:.0f} MB"


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def _speedup_text(result: dict[str, Any]) -> str:
    """A speedup record in lines: what was timed, times against the same and the best dense variant, each
    recompute level's cost and memory, the step's peak memory, and the targets of issue 28."""
    d, lr = result["dense"], result["lowrank"]
    lines = [
        f"{result['model']} {result['format']} {result['macs_ratio']:.2f}x fewer MACs ({result.get('rank_rule', 'uniform')} "
        f"ranks), {result['variant']}, batch {result['batch_size']}, on {result['provenance']['device_name']} "
        f"({result['provenance'].get('torch_threads', '?')} threads)",
        f"train step: dense {d['train_step_ms']:.1f} ms -> low-rank {lr['train_step_ms']:.1f} ms: speedup "
        f"{result['train_speedup']:.2f}x against the same dense variant",
    ]
    if "dense_variants" in result:
        lines += _variant_lines(result)
    lines.append(
        f"activation memory (bytes kept for backward): dense {_mb(d['activation_bytes'])}, low-rank "
        f"{_mb(lr['activation_bytes'])} ({1 / result['memory_ratio']:.2f}x dense); inference speedup {result['infer_speedup']:.2f}x"
    )
    for level in levels(result):
        found = checks(result, level)
        if found:
            at = "" if level is None else f" (recompute {level})"
            lines.append(f"targets{at}: " + "; ".join(c.text() for c in found))
    return "\n".join(lines)


def _variant_lines(result: dict[str, Any]) -> list[str]:
    """The lines of a record with dense variants and recompute levels (made after issue 28)."""
    variants, levels, d = result["dense_variants"], result["lowrank_levels"], result["dense"]
    best = result["best_dense"]
    lines = [
        "dense variants: "
        + ", ".join(f"{k} {v['train_step_ms']:.1f} ms" for k, v in variants.items())
        + f"; best: {best}, low-rank speedup against it {result['train_speedup_best']:.2f}x",
    ]
    off = levels.get("off", {}).get("train_step_ms")
    for name, level in levels.items():
        cost = "" if not off or name == "off" else f" ({100 * (level['train_step_ms'] / off - 1):+.1f}% vs off)"
        lines.append(
            f"  low-rank, recompute {name}{' (this run)' if name == result['lowrank']['recompute'] else ''}: "
            f"{level['train_step_ms']:.1f} ms{cost}, activation memory {_ratio(level['activation_bytes'], d['activation_bytes'])} "
            f"dense, step peak memory {_ratio(level['peak_step_bytes'], d['peak_step_bytes'])} dense"
        )
    return lines
