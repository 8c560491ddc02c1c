"""``python -m elrt_core.cli``: the ``elrt`` command (as ``torchrun -m elrt_core.cli`` and device calls start it)."""

import sys

from . import main

sys.exit(main())
