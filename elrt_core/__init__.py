"""elrt_core: the library behind the reproducible study of ELRT (Sui et al., arXiv 2401.10341).

Modules, lowest first (imports point downwards only): ``cost``, ``regularizers``, ``timing`` and
``machine_load`` (pure functions and measurement helpers), ``lowrank`` (formats, conversion, rank
selection), ``models`` (dense architectures), ``analysis`` (decomposition errors), ``data``, ``config``
(the experiment settings and their hash), ``records`` (run records), ``train`` (the loop),
``calibration`` (λ per network) and ``profiles``, ``bench`` (speed measurements and their records),
``study`` (what notebooks call; it reads bench records; the batch engine and its executors),
``gpu`` (carrying data to a lent GPU and the records back) and ``cli``. A module may import a lower
one inside a function where the import is heavy, never a higher one.
"""

__version__ = "0.1.0"
