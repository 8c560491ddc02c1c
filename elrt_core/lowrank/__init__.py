"""Low-rank convolution formats and model conversion (Tucker-2, matrix, spatial, CP)."""

from .convert import RATIO_TOLERANCE, ConversionReport, LayerReport, convert, report, select_ranks
from .layers import FORMATS, CPConv2d, LowRankConv2d, MatrixConv2d, SpatialConv2d, Tucker2Conv2d
from .speed import autotune, set_impl

__all__ = [
    "FORMATS",
    "LowRankConv2d",
    "Tucker2Conv2d",
    "MatrixConv2d",
    "SpatialConv2d",
    "CPConv2d",
    "convert",
    "report",
    "select_ranks",
    "ConversionReport",
    "LayerReport",
    "RATIO_TOLERANCE",
    "autotune",
    "set_impl",
]
