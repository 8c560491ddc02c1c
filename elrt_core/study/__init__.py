"""What the notebooks call: the run plan of a profile, get-or-run, figures, tables and verdicts."""

from . import approximation, figures, plan, regime, summary, tables, verdicts
from .approximation import approximation_errors
from .plan import PlannedRun
from .runs import MissingRun, get_or_run, results_root, run_dir
from .session import Session, load_model

__all__ = [
    "Session",
    "PlannedRun",
    "MissingRun",
    "get_or_run",
    "results_root",
    "run_dir",
    "load_model",
    "approximation_errors",
    "approximation",
    "plan",
    "tables",
    "figures",
    "verdicts",
    "regime",
    "summary",
]
