"""worldcover: global 10 m land-cover production in the way of ESA WorldCover."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("worldcover")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

from worldcover import credentials as _credentials

_credentials.install()  # no secret value ever reaches a log record, whoever logs it

__all__ = ["__version__"]
