"""Where adapter files live: folder primitives, the backbone and site checks, the format registry and hub ids.

Everything that reads or writes an adapter, fusion, head or task-export folder builds on this package; the formats
themselves register here (:func:`register_format`) from the modules that know them, so this package imports no
composition, interop or Lightning code.
"""

from .atomic import write_directory_atomically, write_file_atomically
from .dispatch import load_detected, save_in_format
from .files import (
    ADAPTER_CONFIG_FILE,
    ADAPTER_WEIGHTS_FILE,
    FUSION_CONFIG_FILE,
    FUSION_WEIGHTS_FILE,
    HEAD_CONFIG_FILE,
    HEAD_FILE,
    LABELS_FILE,
    MODEL_CARD_FILE,
    ONNX_MANIFEST_FILE,
    TASK_FILE,
    cpu_tensors,
    load_head,
    read_json_object,
    read_tensors,
    save_head,
    without_shared_memory,
    write_json,
    write_weights_folder,
)
from .hub import parse_hub_id, resolve_folder
from .registry import FileFormat, detect_format, format_named, formats, hub_files, register_format
from .signature import backbone_signature, check_positions, check_signature, site_positions

__all__ = [
    "ADAPTER_CONFIG_FILE",
    "ADAPTER_WEIGHTS_FILE",
    "FUSION_CONFIG_FILE",
    "FUSION_WEIGHTS_FILE",
    "HEAD_CONFIG_FILE",
    "HEAD_FILE",
    "LABELS_FILE",
    "MODEL_CARD_FILE",
    "ONNX_MANIFEST_FILE",
    "TASK_FILE",
    "FileFormat",
    "backbone_signature",
    "check_positions",
    "check_signature",
    "cpu_tensors",
    "detect_format",
    "format_named",
    "formats",
    "hub_files",
    "load_detected",
    "load_head",
    "parse_hub_id",
    "read_json_object",
    "read_tensors",
    "register_format",
    "resolve_folder",
    "save_head",
    "save_in_format",
    "site_positions",
    "without_shared_memory",
    "write_directory_atomically",
    "write_file_atomically",
    "write_json",
    "write_weights_folder",
]
