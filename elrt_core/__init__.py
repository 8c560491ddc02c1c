"""elrt_core: the library behind the reproducible study of ELRT (Sui et al., arXiv 2401.10341).

Layers (imports point downwards only): ``cost`` and ``regularizers`` (pure functions), ``lowrank``
(formats, conversion, rank selection), ``models`` (dense architectures), ``analysis``
(decomposition errors), ``data``, ``train``, ``records``/``profiles``, ``study``, ``cli``.
"""

__version__ = "0.1.0"
