"""``elrt bench``: measured speed and memory of low-rank vs dense training and inference.

Method: one process builds the dense model and its low-rank version, warms both up, then times
training steps (forward, loss, backward, optimizer step, and the orthogonality penalty when asked)
and inference forward passes **alternating** dense and low-rank, so slow drifts of the machine
(other processes, thermal state) affect both alike. The reported times are medians. On CUDA every
timed region ends with a synchronization.

Also measured:

* **Activation memory** of a training step: bytes of the tensors autograd saves for the backward
  pass (``torch.autograd.graph.saved_tensors_hooks``), the part of training memory that depends
  on the architecture; on CUDA also the peak allocated memory.
* **Where the time goes** (``breakdown``): the time of each top-level operator of a training step,
  measured with ``torch.profiler`` on the CPU and summed per part: convolutions (forward and
  backward, split by kernel shape into 1x1 factors, k x k and depthwise), batch norm, ReLU,
  tensor additions (residual sums and the gradient sums at branch points), the optimizer; the
  rest is "other". From the dense breakdown, the **Amdahl ceiling** is the speedup reached if only
  the converted convolutions became ``macs_ratio`` times faster. On CUDA no breakdown is measured
  (operator CPU times are launch times there), and the ceiling is ``null``.

``--rank-rule`` says how the low-rank network's ranks were chosen (``uniform``, or ``hw:<id>`` for
the hardware-aware rule over a committed timing table, :mod:`elrt_core.lowrank.hw_ranks`), and
:func:`rank_table` measures such a table: every layer shape of a model, dense and at every
register-friendly rank candidate, forward + backward, in turns.
"""

from .measure import RANK_SIZES, aligned_ranks, layer_times, rank_table, regularizer_overhead, speedup
from .profiling import PARTS, activation_bytes, amdahl_ceiling, breakdown
from .reference import reference_speedup, tltorch_model
from .report import summary
from .settings import VARIANT_TEXT, VARIANTS, BenchSettings, record_name
from .steppers import Stepper

__all__ = [
    "BenchSettings",
    "speedup",
    "regularizer_overhead",
    "layer_times",
    "aligned_ranks",
    "activation_bytes",
    "breakdown",
    "rank_table",
    "amdahl_ceiling",
    "record_name",
    "reference_speedup",
    "tltorch_model",
    "summary",
    "Stepper",
    "VARIANTS",
    "VARIANT_TEXT",
    "PARTS",
    "RANK_SIZES",
]
