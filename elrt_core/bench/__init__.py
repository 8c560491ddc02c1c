"""``elrt bench``: measured speed and memory of low-rank vs dense training and inference.

Method: one process builds the dense model and its low-rank version, warms both up, then times
training steps (forward, loss, backward, optimizer step, and the orthogonality penalty when asked)
and inference forward passes **alternating** dense and low-rank, so slow drifts of the machine
(other processes, thermal state) affect both alike. The reported times are medians. On CUDA every
timed region ends with a synchronization.

A speedup (:func:`speedup`) times in turns:

* **dense in every variant that could be its fastest** (:data:`DENSE_LAYOUTS`: NCHW and channels-last,
  eager fp32, beside the run's own variant; ``torch.compile`` where asked and where it compiles), so the
  low-rank step is compared with the same variant and with the **best dense step** of the machine at the
  given thread count;
* **the low-rank network at each recompute level** (:data:`elrt_core.lowrank.recompute.LEVELS`), so the
  time that recomputation costs is measured beside what it saves.

Also measured, per network:

* **Activation memory** of a training step (:func:`activation_bytes`): bytes of the tensors autograd
  keeps for backward (``torch.autograd.graph.saved_tensors_hooks``, with the low-rank layers'
  recomputation as training runs it), the part of training memory that depends on the architecture;
  the **peak memory of a step** (:func:`peak_step_bytes`: the peak resident set size during a step on
  the CPU, the CUDA allocator's peak on a GPU), and parameter and optimizer-state bytes.
* **Where the time goes** (:func:`breakdown`, CPU only): the profiler's time of each top-level operator
  of a training step, summed per part (:data:`PARTS`: convolutions by kernel, batch norm, ReLU, tensor
  additions, layout conversions, the loss, the optimizer, the rest); the parts add up to the step.

``--rank-rule`` says how the low-rank network's ranks were chosen (``uniform``, or ``hw:<id>`` for
the hardware-aware rule over a committed timing table, :mod:`elrt_core.lowrank.hw_ranks`), and
:func:`rank_table` measures such a table: every layer shape of a model, dense and at every
register-friendly rank candidate, forward + backward, in turns.
"""

from .measure import RANK_SIZES, aligned_ranks, layer_times, rank_table, regularizer_overhead
from .memory import activation_bytes, peak_step_bytes, state_bytes
from .profiling import CONV_PARTS, PARTS, breakdown
from .reference import reference_speedup, tltorch_model
from .report import summary
from .settings import VARIANT_TEXT, VARIANTS, BenchSettings, record_name
from .speedup import DENSE_LAYOUTS, speedup
from .steppers import Stepper

__all__ = [
    "BenchSettings",
    "speedup",
    "regularizer_overhead",
    "layer_times",
    "aligned_ranks",
    "activation_bytes",
    "peak_step_bytes",
    "state_bytes",
    "breakdown",
    "rank_table",
    "record_name",
    "reference_speedup",
    "tltorch_model",
    "summary",
    "Stepper",
    "VARIANTS",
    "VARIANT_TEXT",
    "PARTS",
    "CONV_PARTS",
    "DENSE_LAYOUTS",
    "RANK_SIZES",
]
