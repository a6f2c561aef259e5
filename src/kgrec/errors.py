"""The library's error types.

Every problem with user input (a data file, a config, an option) raises a subclass of
:class:`KGRecError`, so that callers can catch one type; data errors name the file, the
line and the reason.
"""

from __future__ import annotations

from pathlib import Path


class KGRecError(Exception):
    """Base class of every error kgrec raises on bad input."""


class DataError(KGRecError):
    """A data file is missing, empty or malformed, or refers to an unknown id."""

    def __init__(self, path: str | Path | None, line: int | None, reason: str) -> None:
        self.path = None if path is None else str(path)
        self.line = line
        self.reason = reason
        where = self.path or "<data>"
        if line is not None:
            where = f"{where}:{line}"
        super().__init__(f"{where}: {reason}")


class ConfigError(KGRecError):
    """A configuration value or command-line option is invalid."""


class OutputError(KGRecError):
    """A file or folder cannot be written: read-only, full disk, a file where a folder is
    expected, or a run folder in use by another run."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")
