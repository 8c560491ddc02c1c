"""What a notebook holds on to: the profile, where records live, and how results are shown.

A notebook creates one :class:`Session` from its papermill parameters, asks it for the runs of a
plan part (reusing finished records by config hash, training only what is missing and allowed),
and shows every figure and table through it, so each one carries what it rests on and the command
that regenerates it: for training runs, the profile's label (epochs, data size, and the seed count
of the runs shown); for anything else (bench records, published values), a ``basis`` in words.
"""

from __future__ import annotations

import base64
import os
import statistics
from collections.abc import Iterable
from pathlib import Path

import pandas as pd
from torch import nn

from .. import profiles, records
from ..records import Record
from ..train import checkpoint
from ..train.loop import build_model
from . import blocks, figures
from . import display as display_tables
from .plan import PlannedRun
from .runs import get_or_run, results_root

__all__ = ["Session", "FoundRuns", "Label", "load_model", "figure_bundle"]


class Label(str):
    """The label of a figure or table of the book, for cross-references (``{numref}`tab-...```), as
    :meth:`Session.figure` and :meth:`Session.table` return it: a string that shows nothing when a
    notebook cell ends with it (the figure or table itself is already shown)."""

    def _ipython_display_(self) -> None:
        """Show nothing (IPython calls this instead of printing the string)."""


def figure_bundle(png: Path, svg: Path) -> dict[str, str]:
    """A display bundle of a saved figure: ``image/svg+xml`` (text) and ``image/png`` (base64)."""
    return {"image/svg+xml": Path(svg).read_text(), "image/png": base64.b64encode(Path(png).read_bytes()).decode("ascii")}


class _SavedFigure:
    """A saved figure that displays as :func:`figure_bundle` (what ``glue`` stores)."""

    def __init__(self, png: Path, svg: Path) -> None:
        self.png, self.svg = Path(png), Path(svg)

    def _repr_mimebundle_(self, include=None, exclude=None) -> tuple[dict[str, str], dict]:
        return figure_bundle(self.png, self.svg), {"image/png": {"width": _png_width(self.png) // 2}}


def _png_width(png: Path) -> int:
    """Pixel width of a PNG file, read from its IHDR chunk."""
    head = Path(png).read_bytes()[:24]
    return int.from_bytes(head[16:20], "big")


def load_model(record: Record) -> nn.Module:
    """The trained model of ``record`` (architecture rebuilt from its config, weights from ``weights.pt``)."""
    model = build_model(record.config)
    model.load_state_dict(checkpoint.load(record.path / checkpoint.WEIGHTS_FILE))
    return model.eval()


class FoundRuns(list):
    """What :meth:`Session.runs` found: the ``(PlannedRun, Record)`` pairs of the finished runs (a list),
    and ``diverged``, the planned runs whose record says they diverged. Adding two keeps both parts."""

    def __init__(self, pairs: Iterable[tuple[PlannedRun, Record]] = (), diverged: Iterable[PlannedRun] = ()) -> None:
        super().__init__(pairs)
        self.diverged: list[PlannedRun] = list(diverged)

    def __add__(self, other: list) -> FoundRuns:
        return FoundRuns([*self, *other], [*self.diverged, *getattr(other, "diverged", ())])


class Session:
    """Papermill parameters of a notebook, resolved: profile, results folder, training policy."""

    def __init__(
        self,
        profile: str,
        results: str | None = None,
        train_missing: bool = True,
        device: str = "auto",
        data_dir: str | None = None,
        notebook: str = "",
    ) -> None:
        self.profile = profiles.load(profile)
        self.root = results_root(results or None)
        self.train_missing = train_missing
        self.device = device
        self.data_dir = data_dir or os.environ.get("ELRT_DATA_DIR") or None
        self.notebook = notebook
        self.figure_dir = self.root / self.profile.name / "figures"
        self.approximation_dir = self.root / self.profile.name / "approximation"
        """Where Figure 3's error tables of this profile are kept (:func:`approximation_errors`)."""
        self._tables = 0
        self.missing: list[PlannedRun] = []
        self._read: dict[str, Record] = {}  # run name -> record of this profile's runs the chapter read
        self.borrowed: dict[str, set[str]] = {}
        """Profile name -> the methods whose runs this notebook read from that other profile."""
        figures.set_style()

    @property
    def command(self) -> str:
        """The command that regenerates this notebook's figures and tables."""
        return f"elrt reproduce --profile {self.profile.name} --only {self.notebook}"

    def runs(self, planned: list[PlannedRun], profile: profiles.Profile | None = None) -> FoundRuns:
        """The finished record of each planned run: trained first if missing and ``train_missing``,
        else only the runs that exist (a chapter shows what is finished, with its true n; the runs
        still missing are counted in :attr:`missing`; a run whose record says it diverged is left out,
        never retrained, and listed in the result's ``diverged``, which :meth:`scale` reports so that a
        verdict never hides the seeds it lost). ``profile``: the profile the runs belong to
        where it is not this session's (see :func:`plan.lender`); such runs are read, never trained
        here, and :meth:`reproduce` names the command that trains them."""
        source = profile or self.profile
        own = source.name == self.profile.name
        if not own and planned:
            self.borrowed.setdefault(source.name, set()).update(run.method for run in planned)
        out = FoundRuns()
        for run in planned:
            found = records.lookup(run.config, self.root / source.name)
            if found is not None and not found.finished:
                out.diverged.append(run)
                continue
            if found is None and self.train_missing and own:
                found = get_or_run(run.config, source.name, root=self.root, device=self.device, data_dir=self.data_dir)
            if found is None:
                if own:
                    self.missing.append(run)
            else:
                out.append((run, found))
                if own:
                    self._read[run.config.name] = found
        return out

    @staticmethod
    def verdict_box(title: str, text: str, verdict: str | None = None) -> None:
        """Display a MyST admonition (the chapter's verdict): green for *supported*, red for
        *contradicted*, neutral otherwise."""
        from IPython.display import Markdown, display

        style = {"supported": "tip", "contradicted": "error"}.get(verdict or "", "note")
        display(Markdown(f":::{{admonition}} {title}\n:class: {style}\n{text}\n:::"))

    @staticmethod
    def paragraph(title: str, text: str) -> None:
        """Display "**<title>.** <text>" (Markdown), e.g. a secondary finding of a chapter."""
        from IPython.display import Markdown, display

        display(Markdown(f"**{title}.** {text}"))

    def scale(self, runs: list[tuple[PlannedRun, Record]] | None = None, profile: profiles.Profile | None = None) -> str:
        """What results rest on: the label of ``profile`` (default: this session's) and the number of
        seeds per method among ``runs`` (e.g. "n = 3–5 seeds per method"; "no finished runs yet" when
        ``runs`` is empty), and, where ``runs`` came from :meth:`runs`, its planned runs that diverged,
        which no number uses."""
        text = (profile or self.profile).describe()
        if runs is None:
            return text
        lost = sorted({run.config.name for run in getattr(runs, "diverged", ())})
        diverged = f"; {len(lost)} diverged run{'s' if len(lost) != 1 else ''} left out ({', '.join(lost)})" if lost else ""
        counts: dict[str, set[int]] = {}
        for run, _ in runs:
            counts.setdefault(run.method, set()).add(run.config.seed)
        if not counts:
            return f"{text}; no finished runs yet{diverged}"
        lo, hi = min(map(len, counts.values())), max(map(len, counts.values()))
        n = f"{lo}" if lo == hi else f"{lo}–{hi}"
        return f"{text}, n = {n} seed{'s' if hi > 1 else ''}" + (" per method" if len(counts) > 1 else "") + diverged

    def reproduce(self) -> None:
        """Display the "reproduce this chapter" snippet: the command that re-executes it from the runs
        that exist, the one that trains its missing runs first (with their number and an estimate of the
        run-hours: their epochs at the median minutes an epoch of the runs it read), the one that retrains all of its
        runs from scratch in a fresh results folder (with the run-hours its runs took), the training of
        the runs read from other profiles (:attr:`borrowed`), and a link to the book's Reproduce page."""
        from IPython.display import Markdown, display

        lines = [f"{self.command} --reuse-only   # execute it from the runs that exist; trains nothing"]
        missing = list({run.config.name: run for run in self.missing}.values())
        minutes = [m for rec in self._read.values() if (m := rec.train_minutes) is not None]
        per_epoch = [rec.train_minutes / rec.config.epochs for rec in self._read.values() if rec.train_minutes is not None]
        if missing:
            epochs = sum(run.config.epochs for run in missing)  # as the compute table of the Reproduce page counts
            estimate = (
                f", about {epochs * statistics.median(per_epoch) / 60:.1f} run-hours at the median epoch of the runs it read"
                if per_epoch
                else ""
            )
            lines.append(
                f"{self.command}   # train its {len(missing)} missing run{'s' if len(missing) != 1 else ''} first{estimate} "
                f"(`elrt plan --profile {self.profile.name}` lists them)"
            )
        if self._read:
            took = f"; here they took {sum(minutes) / 60:.1f} run-hours" if minutes else ""
            lines.append(
                f"ELRT_RESULTS=$PWD/fresh-results {self.command}   # retrain its {len(self._read) + len(missing)} runs "
                f"from scratch in a new folder{took}"
            )
        lines += [
            f"elrt batch --profile {name} --methods '{','.join(sorted(methods))}'   # the runs it reads from profile '{name}'"
            for name, methods in sorted(self.borrowed.items())
        ]
        display(
            Markdown(
                "## Reproduce this chapter\n\n```bash\n" + "\n".join(lines) + "\n```\n\n"
                "Setting up a machine, getting the data and the compute of each profile: {doc}`../reproduce`."
            )
        )

    def figure(
        self,
        fig,
        name: str,
        caption: str,
        runs: list[tuple[PlannedRun, Record]] | None = None,
        basis: str | None = None,
        *,
        alt: str | None = None,
        collapsed: str | None = None,
    ) -> Label:
        """Save ``fig`` (PNG + SVG under ``<results>/<profile>/figures``) and show it as a numbered figure
        of the book (:mod:`elrt_core.study.blocks`): ``caption``, a legend line with what it rests on
        (``basis`` if given, else :meth:`scale` of ``runs``), ``alt`` text (default: from the caption)
        and the label ``fig-<name>``, which it returns for cross-references (``{numref}`fig-...```).
        ``collapsed``: the title of a closed box to put it in (e.g. a figure of every layer).

        The glued bundle holds the saved SVG (what the book shows: sharp at any zoom, text as text) and
        the 200-dpi PNG, displayed at half its pixel width so that it has the same size in Jupyter."""
        from IPython.display import display

        png, svg = figures.save(fig, name, self.figure_dir)
        figures.plt.close(fig)
        key = blocks.label("fig", name)
        self.glue(key, _SavedFigure(png, svg))
        alt = alt or blocks.alt_text(caption)
        basis = basis or self.scale(runs)
        bundle = figure_bundle(png, svg)
        display(
            {
                "text/markdown": blocks.figure_block(key, caption, basis, alt, collapsed),
                "text/html": blocks.figure_html(bundle["image/png"], _png_width(png) // 2, caption, basis, alt),
            },
            raw=True,
        )
        return Label(key)

    def table(
        self,
        df: pd.DataFrame,
        caption: str,
        runs: list[tuple[PlannedRun, Record]] | None = None,
        basis: str | None = None,
        columns=None,
        *,
        name: str | None = None,
        result: str | None = None,
        key: str | None = None,
        max_columns: int = display_tables.MAX_COLUMNS,
        max_rows: int = display_tables.MAX_ROWS,
        collapsed: str | None = None,
    ) -> Label:
        """Show ``df`` as a numbered table of the book with its caption and a legend line with what it
        rests on (see :meth:`figure` for ``runs``, ``basis`` and ``collapsed``), as a readable table
        (:func:`elrt_core.study.display.table`: ``columns`` with headers, units and formats, the ``key``
        column first and kept in view when the table scrolls sideways on a phone, then the result column;
        no index, long or wide tables collapsed, a CSV download). ``key`` defaults to the method column
        (``label``) where the table shows one. ``name`` names the CSV file (default
        ``<notebook>_table<N>``); the table's label, which it returns, is ``tab-<name>``."""
        from IPython.display import display

        self._tables += 1
        keys = [c.key for c in display_tables.columns_of(columns, df)]
        shown = display_tables.table(
            df,
            columns,
            name=name or f"{self.notebook or 'table'}_table{self._tables}",
            result=result,
            key=key or ("label" if "label" in keys else None),
            max_columns=max_columns,
            max_rows=max_rows,
        )
        label = blocks.label("tab", shown.name)
        basis = basis or self.scale(runs)
        html = shown.to_html()
        display(
            {
                "text/markdown": blocks.table_block(label, caption, basis, html, collapsed),
                "text/html": blocks.table_html(caption, basis, html),
            },
            raw=True,
        )
        return Label(label)

    @staticmethod
    def note(text: str) -> None:
        """Display one line of text (a Markdown paragraph), e.g. why a section shows nothing yet: a
        chapter prints nothing, so no output box of raw text reaches the book."""
        from IPython.display import Markdown, display

        display(Markdown(" ".join(text.split())))

    def planned(self, what: str, planned: list[PlannedRun], runs: list[tuple[PlannedRun, Record]] = ()) -> None:
        """Display "**<what>.** Planned: N runs, not yet trained." (or "K of its N planned runs are not
        trained yet." where some are, e.g. a reference shared with another comparison) for a part of the
        plan without the runs to show it (``planned``: its runs; ``runs``: those finished), instead of an
        empty figure or table; it names the command that lists them."""
        names = {run.config.name for run in planned}
        missing = len(names - {run.config.name for run, _ in runs})
        status = (
            f"Planned: {missing} run{'s' if missing != 1 else ''}, not yet trained"
            if missing == len(names)
            else f"{missing} of its {len(names)} planned runs {'is' if missing == 1 else 'are'} not trained yet"
        )
        self.note(f"**{what}.** {status}; `elrt plan --profile {self.profile.name}` lists them.")

    @staticmethod
    def glue(key: str, value) -> None:
        """Make ``value`` available to the book's pages (myst-nb glue), without displaying it here."""
        from myst_nb import glue

        glue(key, value, display=False)
