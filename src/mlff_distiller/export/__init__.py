"""export stage: TorchScript, ONNX (forces included), AOTInductor, metatomic; quantization.

Save/load come in matched pairs; ``export_student`` / ``load_export`` pick the format.
"""

from mlff_distiller.export.api import FORMATS, export_student, load_export
from mlff_distiller.export.core import LoadedExport, check_parity

__all__ = ["FORMATS", "LoadedExport", "check_parity", "export_student", "load_export"]
