"""elrt_core: the library behind the reproducible study of ELRT (Sui et al., arXiv 2401.10341).

Modules, lowest first (imports point downwards only): ``cost`` and ``regularizers`` (pure
functions), ``lowrank`` (formats, conversion, rank selection), ``models`` (dense architectures),
``analysis`` (decomposition errors), ``data``, ``config`` (the experiment settings and their hash),
``records`` (run records), ``train`` (the loop), ``profiles``, ``study`` (what notebooks call),
``bench`` and ``cli``.
"""

__version__ = "0.1.0"
