"""Interop with AdapterHub (``adapters`` 1.x) folders: load theirs with their outputs, write ours for them.

``mm_adapters.load_adapter`` / ``load_fusion`` recognise AdapterHub folders on their own;
``save_adapter(..., format="adapterhub")`` and ``save_fusion(..., format="adapterhub")`` write them: importing this
package registers AdapterHub's adapter, fusion and head folders with the format registry (``adapterhub_formats``).
"""

from . import adapterhub_formats  # noqa: F401  (registers AdapterHub's folders as formats)
from .adapterhub_folders import (
    is_adapterhub_folder,
    is_adapterhub_fusion_folder,
    load_adapterhub_adapter,
    load_adapterhub_fusion,
    load_adapterhub_head,
    save_adapterhub_adapter,
    save_adapterhub_fusion,
)

__all__ = [
    "is_adapterhub_folder",
    "is_adapterhub_fusion_folder",
    "load_adapterhub_adapter",
    "load_adapterhub_fusion",
    "load_adapterhub_head",
    "save_adapterhub_adapter",
    "save_adapterhub_fusion",
]
