"""Kept for imports written before :mod:`mm_adapters.io` existed; the code lives in :mod:`mm_adapters.io.atomic`."""

from .io.atomic import write_directory_atomically, write_file_atomically

__all__ = ["write_directory_atomically", "write_file_atomically"]
