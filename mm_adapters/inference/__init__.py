"""Using exported adapters: load export folders onto their backbones, turn files, tables and text into batches
with the training preprocessing, and answer per input (``mm-adapters predict`` and ``mm-adapters serve``)."""

from .batches import InputItem, collate
from .exports import BackboneKey, TaskExport, UsageError, read_export
from .inputs import collect_inputs
from .mixed import run_mixed_batch
from .results import ResultWriter, output_format
from .session import InferenceSession

__all__ = [
    "BackboneKey",
    "InferenceSession",
    "InputItem",
    "ResultWriter",
    "TaskExport",
    "UsageError",
    "collate",
    "collect_inputs",
    "output_format",
    "read_export",
    "run_mixed_batch",
]
