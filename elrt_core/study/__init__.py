"""What the notebooks call: the run plan of a profile, get-or-run, figures, tables and verdicts."""
