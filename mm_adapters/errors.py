"""Exceptions with messages that say what was wrong and what to do."""


class AdapterLoadError(ValueError):
    """An adapter or fusion directory cannot be loaded into this model."""
