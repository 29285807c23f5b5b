"""The error raised for a local data set that cannot be used as it is."""


class LocalDataError(ValueError):
    """A local data folder or table is missing, laid out wrongly, or has bad rows; the message names the file,
    the rows and what to do."""
