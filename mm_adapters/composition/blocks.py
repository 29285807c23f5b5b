"""The base of composition blocks: what ``set_active_adapters`` accepts besides adapter names.

Each block class lives in the file of its method (``stack.py``, ``fuse.py``, ``batch_split.py``, ``parallel.py``)
and is registered there with :func:`mm_adapters.plugins.register_composition`.
"""

from __future__ import annotations


class CompositionBlock:
    """Base of the blocks that :func:`mm_adapters.set_active_adapters` accepts besides adapter names."""

    def adapter_names(self) -> tuple[str, ...]:
        """Every adapter the block names, in order, each once (fusions resolve their adapters on activation)."""
        raise NotImplementedError
