"""Line-level parsing shared by the format readers, with file/line error reporting."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from kgrec.errors import DataError


def require_file(path: str | Path) -> Path:
    p = Path(path)
    if not p.is_file():
        raise DataError(p, None, "file not found")
    if p.stat().st_size == 0:
        raise DataError(p, None, "file is empty")
    return p


def iter_fields(
    path: str | Path,
    sep: str | None = "\t",
    n_fields: int | tuple[int, ...] | None = None,
    skip_header: bool = False,
    encoding: str = "utf-8",
) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line_number, fields)`` for each non-blank line (1-based numbers).

    CRLF and LF line ends are both accepted. ``n_fields`` (an int or allowed ints) is
    checked; ``sep=None`` splits on any whitespace. Raises :class:`DataError` for a
    missing or empty file, undecodable bytes, or a wrong number of fields.
    """
    p = require_file(path)
    allowed = (n_fields,) if isinstance(n_fields, int) else n_fields
    seen = False
    try:
        with p.open(encoding=encoding, newline="") as f:
            for no, line in enumerate(f, start=1):
                if skip_header and no == 1:
                    continue
                line = line.rstrip("\r\n")
                if not line.strip():
                    continue
                fields = line.split(sep) if sep is not None else line.split()
                if allowed is not None and len(fields) not in allowed:
                    want = " or ".join(map(str, allowed))
                    raise DataError(p, no, f"expected {want} fields, found {len(fields)}: {line!r}")
                seen = True
                yield no, fields
    except UnicodeDecodeError as e:
        raise DataError(p, None, f"cannot decode as {encoding}: {e}") from None
    if not seen:
        raise DataError(p, None, "file has no data lines")


def to_int(path: str | Path, line: int, value: str, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise DataError(path, line, f"{what} is not an integer: {value!r}") from None


def to_float(path: str | Path, line: int, value: str, what: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise DataError(path, line, f"{what} is not a number: {value!r}") from None


def read_int_table(path: str | Path, n_cols: int, names: tuple[str, ...] | None = None,
                   sep: str | None = "\t") -> np.ndarray:
    """Read a headerless table of non-negative integers into ``int64 (n, n_cols)``."""
    names = names or tuple(f"column {k + 1}" for k in range(n_cols))
    rows = []
    for no, fields in iter_fields(path, sep=sep, n_fields=n_cols):
        row = [to_int(path, no, v, names[k]) for k, v in enumerate(fields)]
        if min(row) < 0:
            raise DataError(path, no, f"negative id in {fields}")
        rows.append(row)
    return np.asarray(rows, dtype=np.int64).reshape(-1, n_cols)
