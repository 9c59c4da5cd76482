"""Exceptions the library raises for user mistakes.

The command line turns each of these into one line on stderr and a non-zero
exit; anything else is a bug and keeps its traceback.
"""


class JaxsoftmaxError(Exception):
    """Base class: a problem the user can fix, described in one line."""


class DataError(JaxsoftmaxError):
    """A dataset is missing, unreadable, corrupt or inconsistent."""


class DataNotFound(DataError):
    """A known dataset is on disk nowhere, and fetching it was not asked for."""


class ConfigError(JaxsoftmaxError, ValueError):
    """A run was described with invalid settings."""


class CheckpointError(JaxsoftmaxError):
    """A checkpoint is missing, corrupt, or does not belong to the run resuming it."""
