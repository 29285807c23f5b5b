"""The recipes: one file per task (its data loading and its Lightning module) on :mod:`mm_adapters.runner`, with
YAML presets in ``configs/<recipe>/``. Run one as ``python recipes/<name>.py`` (``--help``, ``--print-config``)."""
