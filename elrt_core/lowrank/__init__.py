"""Low-rank convolution formats and model conversion (Tucker-2, matrix, spatial, CP)."""

from .convert import RATIO_TOLERANCE, ConversionReport, LayerReport, convert, convertible, report, select_ranks, to_dense
from .fold import fold_batchnorm
from .hw_ranks import TimingTable, allocate, register_sizes
from .layers import FORMATS, CPConv2d, LowRankConv2d, MatrixConv2d, SpatialConv2d, Tucker2Conv2d
from .recompute import Recomputing, recomputing, set_recompute
from .speed import autotune, set_impl

__all__ = [
    "FORMATS",
    "LowRankConv2d",
    "Tucker2Conv2d",
    "MatrixConv2d",
    "SpatialConv2d",
    "CPConv2d",
    "convert",
    "convertible",
    "to_dense",
    "fold_batchnorm",
    "report",
    "select_ranks",
    "allocate",
    "register_sizes",
    "TimingTable",
    "ConversionReport",
    "LayerReport",
    "RATIO_TOLERANCE",
    "autotune",
    "set_impl",
    "set_recompute",
    "recomputing",
    "Recomputing",
]
