"""Exceptions raised for bad input; each message says what to do about it."""


class AdvDetectError(Exception):
    """Base class of the errors this package raises on purpose."""


class ProfileError(AdvDetectError, ValueError):
    """Unknown profile or chapter, or a parameter of the wrong type."""


class DataError(AdvDetectError, FileNotFoundError):
    """A dataset is unknown, missing offline, or malformed."""


class CacheError(AdvDetectError, RuntimeError):
    """A cached artefact is corrupt or was written for another configuration."""
