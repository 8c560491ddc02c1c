"""Ready for a lent GPU: carry the data there, train there until a deadline, bring the results back.

``elrt gpu pack`` (here) -> device calls carrying the pack's groups -> ``elrt gpu unpack``,
``elrt batch --executor local --device cuda --minutes M`` (the one runner of every machine) and
``elrt gpu collect`` (there) -> ``elrt gpu receive`` (here). The modules: :mod:`.pack` (data and
checkpoints in pieces that fit a call), :mod:`.source` (which commit the device's copy of the tree
is), :mod:`.jobs` (the CUDA bench set, and readying the tree for the batch), :mod:`.calls` (the calls
written out), :mod:`.collect` (the archive that comes back, and receiving it). GPU.md is the
call-by-call plan.
"""
