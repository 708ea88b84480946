"""Typed errors.

Every failure a user can cause (a bad file, a wrong unit, an impossible config) ends in one
of these, carrying a message that names the input and what was expected. The CLI prints the
message on one line and exits non-zero; ``--debug`` shows the traceback.
"""

from __future__ import annotations


class SmciError(Exception):
    """Base class of all errors the engine raises on purpose."""

    exit_code = 1


class ConfigError(SmciError):
    """The configuration (file, environment or CLI option) is invalid."""

    exit_code = 2


class DeviceError(SmciError):
    """A requested device (GPU) or GPU library is not usable."""

    exit_code = 3


class InputDataError(SmciError):
    """An input file or record does not hold what was expected."""

    exit_code = 4


class GridError(SmciError):
    """Grids do not match or a location lies outside the grid."""

    exit_code = 5


class ModelError(SmciError):
    """A model file or model card is missing, corrupt or incompatible."""

    exit_code = 6


class OutputError(SmciError):
    """The product could not be written (disk full, lock held, ...)."""

    exit_code = 7
