"""The book's table helper (elrt_core.study.display), the figure files and the Sphinx extension."""

import base64
import json
import re
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pandas as pd
import pytest
from docutils import nodes
from docutils.frontend import get_default_settings
from docutils.parsers.rst import Parser
from docutils.utils import new_document

from elrt_core.study import display, figures, sphinx_ext
from elrt_core.study.session import figure_bundle


def _summary(rows=3, extra=0):
    df = pd.DataFrame(
        {
            "model": ["resnet20"] * rows,
            "method": [f"method {i}" for i in range(rows)],
            "macs": [40551040 - i for i in range(rows)],
            "final_top1": [85.1234 + i for i in range(rows)],
            "params_reduction": [np.nan] + [2.0] * (rows - 1),
        }
    )
    for i in range(extra):
        df[f"extra_{i}"] = range(rows)
    return df


COLUMNS = {
    "method": "method",
    "final_top1": ("test top-1 (%)", ".2f"),
    "macs": ("MACs per image", None),
    "params_reduction": ("parameter reduction (x)", ".2f"),
}


def _cells(html):
    """Header and body cells of the first (on-screen) table of ``html``, as text."""
    first = html.split("</table>")[0]
    heads = re.findall(r"<th\b[^>]*>(.*?)</th>", first)
    rows = [re.findall(r"<td[^>]*>(.*?)</td>", r) for r in re.findall(r"<tr>(.*?)</tr>", first.split("<tbody>")[1])]
    return heads, rows


def test_headers_formats_no_index_and_missing_values():
    t = display.table(_summary(), COLUMNS, result="final_top1")
    heads, rows = _cells(t.to_html())
    assert heads == ["test top-1 (%)", "method", "MACs per image", "parameter reduction (x)"]  # result first
    assert rows[0] == ["85.12", "method 0", "40,551,040", "\u2014"]  # no index column, NaN is an em dash
    assert rows[2][2] == "40,551,038"
    assert "<details" not in t.to_html() and not t.truncated


def test_the_key_column_comes_first_then_the_result_and_the_table_scrolls_in_its_own_box():
    t = display.table(_summary(), COLUMNS, result="final_top1", key="method")
    heads, _ = _cells(t.to_html())
    assert heads[:3] == ["method", "test top-1 (%)", "MACs per image"]
    assert '<div class="elrt-table-scroll" style="overflow-x:auto; max-width:100%"><table' in t.to_html()
    with pytest.raises(KeyError, match="key column"):
        display.table(_summary(), COLUMNS, key="label")


def test_result_defaults_to_the_first_column_and_unknown_columns_fail():
    assert display.table(_summary(), COLUMNS).text.columns[0] == "method"
    with pytest.raises(KeyError, match="no column"):
        display.table(_summary(), {"accuracy": "test top-1 (%)"})
    with pytest.raises(KeyError, match="result column"):
        display.table(_summary(), COLUMNS, result="accuracy")
    with pytest.raises(ValueError, match="distinct"):
        display.table(_summary(), {"macs": "x", "method": "x"})


def test_value_formatting():
    assert display.format_value(np.nan) == display.format_value(None) == display.format_value(pd.NA) == "\u2014"
    assert display.format_value(1234567) == "1,234,567"
    assert display.format_value(np.int64(40551040)) == "40,551,040"
    assert display.format_value(3.14159) == "3.14"
    assert display.format_value(2.0, ",d") == "2"
    assert display.format_value(True) == display.format_value(np.bool_(True)) == "yes" and display.format_value(False) == "no"
    assert display.format_value(0.1234, ".1%") == "12.3%"
    assert display.format_value(1.5, lambda v: f"{v:g}x") == "1.5x"
    assert display.format_value("x86_64") == "x86_64"


def test_a_value_near_its_threshold_keeps_the_decimals_that_decide_it():
    assert display.decisive(1.5996, 1.6) == 1.5996 and display.decimals(1.5996) == "1.5996"  # never "1.60", "not reached"
    assert display.decisive(1.6004, 1.6) == 1.6004  # never "1.60" for a strict excess either
    assert display.decisive(1.6, 1.6) == 1.6 and display.decimals(1.6) == "1.60"
    assert display.decisive(1.23456, 1.6) == 1.23 and display.decimals(1.23) == "1.23"
    assert display.decisive(4.996, 5) == 4.996  # a penalty share under its 5% limit
    assert display.decimals(1.2) == "1.20" and display.decimals(0.97505) == "0.97505"
    assert display.decimals(display.decisive(1.5999999, 1.6)) == "1.5999999"  # closer than 6 decimals: in full
    assert display.decimals(display.decisive(-1e-7, 0.0), sign=True) == "-1e-07"
    assert display.decimals(0.5, sign=True) == "+0.50"


def test_whole_number_floats_read_as_integers_and_stay_integers_in_the_csv():
    df = pd.DataFrame({"macs": [40551040.0, np.nan], "acc": [85.0, 86.5]})  # the NaN made macs a float column
    t = display.table(df, {"acc": "test top-1 (%)", "macs": "MACs per image"})
    assert t.text["MACs per image"].tolist() == ["40,551,040", "\u2014"]
    assert t.text["test top-1 (%)"].tolist() == ["85.00", "86.50"]
    assert t.csv().splitlines() == ["test top-1 (%),MACs per image", "85.0,40551040", "86.5,"]
    ratios = display.table(pd.DataFrame({"r": [2.0, 3.0]}), {"r": "MAC reduction (x)"})  # whole, but no gap
    assert ratios.text["MAC reduction (x)"].tolist() == ["2.00", "3.00"]


def test_wide_and_long_tables_show_seven_columns_and_collapse_the_rest():
    df = _summary(rows=20, extra=6)
    cols = {**COLUMNS, **{f"extra_{i}": f"extra {i} (count)" for i in range(6)}, "model": "model"}
    t = display.table(df, cols, result="final_top1", name="main results")
    assert t.shape == (20, 11) and t.truncated
    html = t.to_html()
    heads, rows = _cells(html)
    assert len(heads) == display.MAX_COLUMNS == 7 and heads[0] == "test top-1 (%)"
    assert len(rows) == display.MAX_ROWS
    assert "Shown: 7 of 11 columns and 15 of 20 rows." in html
    full = html.split("<details")[1]
    assert "<summary>Full table (20 rows, 11 columns)</summary>" in full and "overflow-x:auto" in full
    assert len(re.findall(r"<tr>", full)) == 21 and "extra 5 (count)" in full and "model" in full
    assert 'download="main-results.csv"' in html


def test_the_csv_download_holds_the_full_table():
    df = _summary(rows=20, extra=6)
    t = display.table(df, None, name="all")
    href = re.search(r'href="(data:text/csv;charset=utf-8;base64,[^"]+)"', t.to_html()).group(1)
    csv = base64.b64decode(href.split(",", 1)[1]).decode()
    assert csv == t.csv()
    lines = csv.splitlines()
    assert lines[0] == ",".join(c.replace("_", " ") for c in df.columns)  # every column, readable headers
    assert len(lines) == 21 and lines[1].startswith("resnet20,method 0,40551040,85.1234,")


def test_an_index_level_can_be_a_column():
    df = _summary().set_index("method")
    t = display.table(df, {"final_top1": ("test top-1 (%)", ".1f"), "method": "method"})
    assert t.text.values.tolist() == [["85.1", "method 0"], ["86.1", "method 1"], ["87.1", "method 2"]]


def test_methods_of_one_budget_are_drawn_side_by_side_with_their_n():
    summary = pd.DataFrame(
        {
            "model": ["resnet20"] * 3,
            "flops_ratio": [None, 2.0, 2.0],
            "label": ["dense", "Tucker-2", "CP"],
            "macs": [4.0e7, 2.0e7, 2.0e7],
            "test_top1": [87.5, 85.0, 85.0],
            "test_sd": [0.1, 0.2, None],
            "n": [5, 5, 2],
        }
    )
    fig = figures.accuracy_vs_flops(summary)
    ax = fig.axes[0]
    xs = [line.get_xdata()[0] for line in ax.lines if len(line.get_xdata()) == 1 and line.get_marker() not in ("_", "")]
    assert len(xs) == 3 and xs[1] != xs[2] and abs(xs[1] / 2.0e7 - 1) < 0.05  # apart, near their budget
    assert xs[0] == 4.0e7 and (xs[1] + xs[2]) / 2 == pytest.approx(2.0e7)  # alone: in place; a pair: centred
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["dense (n = 5)", "Tucker-2 (n = 5)", "CP (n = 2)"]


def test_figures_are_saved_at_200_dpi_and_shown_as_svg(tmp_path):
    figures.set_style()
    fig, ax = figures.plt.subplots(figsize=(5, 3))
    ax.plot([0, 1], [0, 1])
    png, svg = figures.save(fig, "line", tmp_path)
    figures.plt.close(fig)
    head = png.read_bytes()
    width = int.from_bytes(head[16:20], "big")
    assert figures.PNG_DPI >= 200
    assert width >= 4 * figures.PNG_DPI  # 5 in wide before the tight bounding box trims the margins
    bundle = figure_bundle(png, svg)
    assert bundle["image/svg+xml"].lstrip().startswith("<?xml") and "<svg" in bundle["image/svg+xml"]
    assert base64.b64decode(bundle["image/png"]) == head


def _layer_frame():
    """Figure 3-like rows: 4 layers x 4 formats x 3 MAC budgets, trained and initialization weights."""
    rng = np.random.default_rng(0)
    rows = [
        {"layer": f"layer{i}.conv", "index": i, "format": f, "by": "macs", "budget": b, "rel_error": rng.uniform(0.1, 0.9),
         "macs": 1e6 / b, "params": 1e3 / b, "weights": w}
        for w in ("trained", "initialization")
        for i in range(4)
        for f in ("tucker2", "matrix", "spatial", "cp")
        for b in (2.0, 3.0, 4.0)
    ]  # fmt: skip
    return pd.DataFrame(rows)


def _history(labels=("Tucker-2", "Tucker-2 + SO (U2)", "ELRT (Tucker-2 + SO on U1, U2, 1/rank)")):
    rows = [
        {"label": label, "seed": seed, "epoch": e, "train_loss": 2.0 / e + 0.01 * k, "test_top1": 40 + 3 * e + k + 0.1 * seed}
        for k, label in enumerate(labels)
        for seed in range(3)
        for e in range(1, 16)
    ]
    return pd.DataFrame(rows)


def _every_figure():
    """One figure of each kind the chapters draw, from small synthetic inputs."""
    from elrt_core.study import stats

    figures.set_style()
    layers = _layer_frame()
    diffs = [stats.paired(dict.fromkeys(range(5), 80.0), {s: 80.5 + 0.2 * s for s in range(5)}, names=("a", "b"))]
    summary = pd.DataFrame(
        {"model": ["resnet20"] * 3, "flops_ratio": [None, 2.0, 2.0], "label": ["dense", "Tucker-2", "CP"],
         "macs": [4.0e7, 2.0e7, 2.0e7], "test_top1": [87.5, 85.0, 85.0], "test_sd": [0.1, 0.2, None], "n": [5, 5, 2]}
    )  # fmt: skip
    return {
        "layer_errors": figures.layer_errors(layers[layers["weights"] == "trained"], "macs"),
        "error_curves": figures.error_curves(layers, "macs"),
        "error_summary": figures.error_summary(layers, "macs"),
        "training_curves": figures.training_curves(_history()[lambda d: d["label"] != d["label"].iloc[-1]]),
        "accuracy_vs_flops": figures.accuracy_vs_flops(summary),
        "differences": figures.differences(diffs, {"a": "Tucker-2", "b": "ELRT (Tucker-2 + SO on U1, U2, 1/rank)"}),
        "curves_by_method": figures.curves_by_method(_history(), "Tucker-2"),
        "effect_trend": figures.effect_trend(_trend(), 0.5),
    }


def _trend():
    """Rows of regime.trend: an effect with one seed at the shortest profile, three at the next, none at the last."""
    nan = float("nan")
    return pd.DataFrame(
        [
            {"effect": "ELRT (Tucker-2 + SO on U1, U2, 1/rank) − matrix rank, channel reshape", "profile": p, "steps": st, "n": n,
             "mean": m, "low": lo, "high": hi, "diffs": d}
            for p, st, n, m, lo, hi, d in [
                ("cpu-quick", 1170, 1, 2.99, nan, nan, [2.99]),
                ("cpu-full", 5265, 3, -0.13, -0.32, 0.05, [-0.1, -0.2, -0.1]),
                ("cpu-full-30", 10530, 0, nan, nan, nan, []),
                ("cpu-full-60", 21060, 0, nan, nan, nan, []),
            ]
        ]
    )  # fmt: skip


@pytest.mark.slow
def test_every_figure_fits_a_phone_column_with_text_of_at_least_ten_points(tmp_path):
    """At most FIG_WIDTH (5.6 in) wide as saved (a 390-px phone shows it at about 0.63: 10-pt text at 8.4 px), every text 10 pt or more."""
    from matplotlib.text import Text

    for name, fig in _every_figure().items():
        _, svg = figures.save(fig, name, tmp_path)
        width_pt = float(re.search(r'<svg[^>]* width="([0-9.]+)pt"', svg.read_text()).group(1))
        assert width_pt <= (figures.FIG_WIDTH + 0.25) * 72, (name, width_pt / 72)
        texts = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
        small = {t.get_text(): t.get_fontsize() for t in texts if t.get_fontsize() < figures.MIN_FONT_PT}
        assert texts and not small, (name, small)
        assert "<text" in svg.read_text()  # text stays text: the browser check measures it
        figures.plt.close(fig)


def test_formats_differ_in_colour_and_in_marker():
    formats = ["tucker2", "matrix", "spatial", "cp", "toy"]
    colours, markers = figures.format_colours(formats), figures.format_markers(formats)
    assert len(set(colours.values())) == len(formats) and len(set(markers.values())) == len(formats)
    assert figures.format_colours(["spatial"]) == {"spatial": colours["spatial"]}  # the same in every figure


def test_seed_dots_sit_beside_the_interval_not_under_it():
    from elrt_core.study import stats

    figures.set_style()
    c = stats.paired(dict.fromkeys(range(5), 80.0), {0: 80.6, 1: 80.6, 2: 80.61, 3: 81.0, 4: 80.2}, names=("a", "b"))
    ax = figures.differences([c], {}).axes[0]
    seeds = [col for col in ax.collections if len(col.get_offsets()) == c.n]
    ys = seeds[0].get_offsets()[:, 1]
    assert len(seeds) == 1 and all(y >= 0.15 for y in ys)  # the interval is drawn at y = 0
    assert len(set(ys)) == 2  # two lanes: seeds a hair apart both show
    figures.plt.close(ax.figure)


def test_training_curves_zoom_into_the_last_epochs():
    figures.set_style()
    df = _history()
    fig = figures.training_curves(df)
    full, zoom = fig.axes[1], fig.axes[3]  # test top-1: all epochs, then the last third
    assert zoom.get_xlim()[0] >= 10 and full.get_xlim()[0] < 2
    assert zoom.get_ylim()[1] - zoom.get_ylim()[0] < (full.get_ylim()[1] - full.get_ylim()[0]) / 2
    assert [t.get_text() for t in fig.legends[0].get_texts()] == list(dict.fromkeys(df["label"]))
    figures.plt.close(fig)
    assert len(figures.training_curves(df, zoom_epochs=0).axes) == 2


def _cell(doc, tags):
    cell = nodes.container(classes=["cell"] + [f"tag_{t}" for t in tags])
    cell += nodes.literal_block(text=f"cell {tags}")
    doc += cell
    return cell


def test_a_very_wide_interval_is_cut_at_the_axis_edge_and_its_end_written_there():
    from elrt_core.study import stats

    narrow = stats.paired(dict.fromkeys(range(4), 80.0), {s: 80.5 + 0.1 * s for s in range(4)}, names=("a", "b"))
    wide = stats.paired({0: 80.0, 1: 80.0}, {0: 78.0, 1: 83.0}, names=("a", "c"))  # n = 2: t = 12.7, CI -31.3 to +32.3
    fig = figures.differences([narrow, wide], {})
    low, high = fig.axes[0].get_xlim()
    assert low <= min(narrow.low, -2.0) and high >= max(narrow.high, 3.0)  # every seed, mean and the narrow CI fit
    assert high - low < 20  # the wide interval does not set the scale
    notes = [t.get_text() for t in fig.axes[0].texts if t.get_text().startswith("CI to")]
    assert notes == [f"CI to {wide.low:+.1f}", f"CI to {wide.high:+.1f}"]
    moderate = stats.paired(dict.fromkeys(range(3), 80.0), {0: 78.2, 1: 79.5, 2: 79.3}, names=("a", "d"))  # CI -2.8 to +0.8
    low, high = figures.differences([moderate, wide], {}).axes[0].get_xlim()
    assert low <= moderate.low and high >= moderate.high  # an interval near the data is shown whole


def test_the_sphinx_extension_drops_the_parameter_cells(tmp_path):
    doc = new_document("chapter", get_default_settings(Parser))
    for tags in (["parameters"], ["injected-parameters"], [], ["hide-output"]):
        _cell(doc, tags)
    sphinx_ext.remove_tagged_cells(None, doc)
    assert [c["classes"] for c in doc.findall(nodes.container)] == [["cell"], ["cell", "tag_hide-output"]]

    sources = tmp_path / "_sources" / "book" / "generated"
    sources.mkdir(parents=True)
    nb = {
        "cells": [
            {"cell_type": "code", "metadata": {"tags": t}, "source": str(t)}
            for t in (["parameters"], ["injected-parameters"], [])
        ],
        "nbformat": 4,
        "metadata": {
            "kernelspec": {"name": "python3"},
            "papermill": {"input_path": "/home/u/notebooks/01_x.ipynb", "parameters": {"data_dir": "/data"}},
        },
    }
    (sources / "01_x.ipynb").write_text(json.dumps(nb))
    sphinx_ext.clean_notebook_sources(SimpleNamespace(outdir=str(tmp_path)), None)
    cleaned = json.loads((sources / "01_x.ipynb").read_text())
    assert [c["metadata"]["tags"] for c in cleaned["cells"]] == [["parameters"], []]  # still runs with its defaults
    assert cleaned["metadata"] == {"kernelspec": {"name": "python3"}}


def test_a_regime_mean_without_an_interval_is_drawn_hollow_and_says_so():
    fig = figures.effect_trend(_trend(), 0.5)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.texts]
    assert labels == ["n = 1\nno interval", "n = 3"]
    empty = {(10530, 0), (21060, 0)}  # the profiles without runs, marked by a cross on the zero line
    crosses = [c for c in ax.collections if len(c.get_offsets()) == 1 and tuple(c.get_offsets()[0]) in empty]
    assert len(crosses) == 2
    means = [c for c in ax.collections if len(c.get_offsets()) == 1 and c.get_paths() and c not in crosses]  # diamonds
    faces = [tuple(c.get_facecolors()[0]) for c in means[-2:]]
    assert faces[0] == (1.0, 1.0, 1.0, 1.0) and faces[1] == (0.0, 0.0, 0.0, 1.0)  # hollow, then filled
    figures.plt.close(fig)
    # cpu-full-30 and cpu-full-60 sit 0.3 decades apart: no two texts overlap, with means at both of them
    # (the one-seed label is the widest) or without runs, and the last label stays inside the panel
    filled = _trend().assign(
        n=[1, 3, 1, 2], mean=[2.99, -0.13, 0.4, 0.6], low=[nan := float("nan"), -0.32, nan, -1.0],
        high=[nan, 0.05, nan, 2.2], diffs=[[2.99], [-0.1, -0.2, -0.1], [0.4], [0.1, 1.1]],
    )  # fmt: skip
    for table in (_trend(), filled):
        fig = figures.effect_trend(table, 0.5)
        renderer = fig.canvas.get_renderer()
        ax = fig.axes[0]
        for texts in (fig.axes[-1].get_xticklabels(), ax.texts):
            boxes = [t.get_window_extent(renderer) for t in texts]
            assert len(boxes) >= 2 and not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])
        assert ax.texts[-1].get_window_extent(renderer).x1 <= ax.get_window_extent(renderer).x1
        figures.plt.close(fig)
