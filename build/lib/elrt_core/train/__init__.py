"""Training: the loop (:func:`fit`), schedules, checkpoints and DDP setup."""

from .loop import TrainingDiverged, build_model, evaluate, fit, resolve_device
from .schedules import lr_factor, reg_factor

__all__ = ["fit", "build_model", "evaluate", "resolve_device", "TrainingDiverged", "lr_factor", "reg_factor"]
