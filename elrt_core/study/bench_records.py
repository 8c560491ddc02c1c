"""What the efficiency chapter (and chapter 3's penalty table) call on ``elrt bench`` records (JSON),
one module per job, all names here:

* :mod:`.bench_load`: where the records are and how they are read (:func:`load`, :data:`BASIS`);
* :mod:`.bench_answer`: the chapter's answer: each Tucker-2 network's step against the fastest dense
  step, its memory, parameters and optimizer state, and the targets set for them;
* :mod:`.bench_claim`: claim 5 (:func:`speed_claim`) and the speedups beside the rank rules' accuracy;
* :mod:`.bench_tables`: the appendix's tables of every record;
* :mod:`.bench_thresholds`: the appendix's thresholds and their history;
* :mod:`.bench_figures`: the speedup figure.
"""

from .bench_answer import answer_records, efficiency_table, gpu_text, memory_table, targets_table
from .bench_claim import CLAIM_SETTING, best_speedup, judged_records, paired_rounds, run_speedups, speed_claim, speedups_source
from .bench_figures import speedup_figure
from .bench_load import BASIS, BENCH_FOLDER, load
from .bench_tables import (
    breakdown_table,
    conv_speedups,
    layer_table,
    recompute_table,
    reference_table,
    regularizer_overhead,
    speedup_table,
    variants_text,
)
from .bench_thresholds import targets_text, thresholds, thresholds_history

__all__ = [
    "BASIS",
    "BENCH_FOLDER",
    "CLAIM_SETTING",
    "load",
    "answer_records",
    "efficiency_table",
    "memory_table",
    "targets_table",
    "gpu_text",
    "speed_claim",
    "judged_records",
    "paired_rounds",
    "best_speedup",
    "run_speedups",
    "speedups_source",
    "speedup_table",
    "recompute_table",
    "breakdown_table",
    "conv_speedups",
    "layer_table",
    "reference_table",
    "regularizer_overhead",
    "variants_text",
    "thresholds",
    "thresholds_history",
    "targets_text",
    "speedup_figure",
]
