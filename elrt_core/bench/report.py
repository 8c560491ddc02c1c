"""What a bench record measured, in a few readable lines (``elrt bench`` prints this)."""

from __future__ import annotations

from typing import Any

from ..machine_load import busy, quiet_limit

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
    d, lr = result["dense"], result["lowrank"]
    ceiling = "not measured (no breakdown)" if result["amdahl_ceiling"] is None else f"{result['amdahl_ceiling']:.2f}x"
    return (
        f"{result['model']} {result['format']} {result['macs_ratio']:.2f}x fewer MACs ({result.get('rank_rule', 'uniform')} ranks), "
        f"{result['variant']}, on "
        f"{result['provenance']['device_name']}: train step {d['train_step_ms']:.1f} -> {lr['train_step_ms']:.1f} ms "
        f"(speedup {result['train_speedup']:.2f}x), inference {result['infer_speedup']:.2f}x, activation memory "
        f"dense/low-rank {result['memory_ratio']:.2f}x, Amdahl estimate {ceiling}"
    )
