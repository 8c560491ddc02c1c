"""The folders of a device session that ``elrt gpu`` takes by default (:mod:`elrt_core.gpu.pack`), as
its help names them."""

from ...gpu.pack import DEVICE_DATA, DEVICE_RESULTS, PACK_DIR

__all__ = ["PACK_FOLDER", "DATA_FOLDER", "RESULTS_FOLDER", "RESULTS_HELP"]

PACK_FOLDER = f"<study>/{PACK_DIR}"
DATA_FOLDER = f"<study>/{DEVICE_DATA}"
RESULTS_FOLDER = f"<study>/{DEVICE_RESULTS}"
RESULTS_HELP = f"results folder (default: {RESULTS_FOLDER})"
