"""The coverage sweep: which models the installed libraries can build offline does ``add_adapter`` handle with no
``spec=``? ``python -m mm_adapters.coverage`` prints the table; ``docs/supported_models.md`` is generated from it."""

from .candidates import Candidate, candidates, named_candidate
from .check import PRESETS, Result, check_model

__all__ = ["PRESETS", "Candidate", "Result", "candidates", "check_model", "named_candidate"]
