"""Exceptions. Anything a user handed us that is wrong raises :class:`InputError`.

The CLI turns an :class:`InputError` into one line on stderr and exit code 2,
never a traceback, so its message must name the input and what was expected.
"""


class WorldCoverError(Exception):
    """Base class of every error worldcover raises on purpose."""


class InputError(WorldCoverError, ValueError):
    """A user-supplied value (tile id, bbox, file, option) is not valid."""


class DataError(WorldCoverError):
    """Input data (a COG, a STAC item, a model) is unusable for the job asked."""
