"""Line-level parsing shared by the format readers, with file/line error reporting.

Every reader goes through these helpers, so they hold the checks that keep a bad file
from being read as something else:

- a UTF-8 byte-order mark at the start of a file is dropped (it would otherwise glue
  itself to the first id and lose the first row);
- integers are ASCII digits with an optional sign (no ``1_000``, no ``²`` or other
  Unicode digits that Python's ``int`` would take) and fit in int64;
- numbers are finite (no ``nan``/``inf``), and :func:`to_float` can also demand ``>= 0``;
- a remapped id may not exceed :func:`id_limit` of the data that defines it, so one bad
  line cannot make a reader allocate tables for 10^10 ids (:func:`check_ids` reports
  the first offending line).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from kgrec.errors import DataError

INT64_MAX = 2**63 - 1
#: ids below this are always accepted, whatever the size of the file
MIN_ID_LIMIT = 1 << 20
_INT = re.compile(r"[+-]?[0-9]{1,19}")
BOM = "\ufeff"


def require_file(path: str | Path) -> Path:
    p = Path(path)
    if not p.is_file():
        raise DataError(p, None, "file not found" if not p.exists() else "not a regular file")
    if p.stat().st_size == 0:
        raise DataError(p, None, "file is empty")
    return p


def open_text(path: str | Path, encoding: str = "utf-8"):
    """Open a data file for reading text; UTF-8 files may start with a BOM."""
    enc = "utf-8-sig" if encoding.replace("_", "-").lower() in ("utf-8", "utf8") else encoding
    try:
        return Path(path).open(encoding=enc, newline="")
    except OSError as e:
        raise DataError(path, None, f"cannot read: {e.strerror or e}") from None


def iter_fields(
    path: str | Path,
    sep: str | None = "\t",
    n_fields: int | tuple[int, ...] | None = None,
    skip_header: bool = False,
    encoding: str = "utf-8",
) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line_number, fields)`` for each non-blank line (1-based numbers).

    CRLF and LF line ends are both accepted, and a leading UTF-8 BOM is dropped.
    ``n_fields`` (an int or allowed ints) is checked; ``sep=None`` splits on any
    whitespace. Raises :class:`DataError` for a missing or empty file, undecodable bytes,
    a NUL byte, or a wrong number of fields.
    """
    p = require_file(path)
    allowed = (n_fields,) if isinstance(n_fields, int) else n_fields
    seen = False
    no = 0
    try:
        with open_text(p, encoding) as f:
            for no, line in enumerate(f, start=1):
                if skip_header and no == 1:
                    continue
                line = line.rstrip("\r\n")
                if no == 1 and line.startswith(BOM):  # a BOM in a non-UTF-8 file
                    line = line[1:]
                if "\x00" in line:
                    raise DataError(p, no, "NUL byte: not a text file")
                if not line.strip():
                    continue
                fields = line.split(sep) if sep is not None else line.split()
                if allowed is not None and len(fields) not in allowed:
                    want = " or ".join(map(str, allowed))
                    raise DataError(p, no, f"expected {want} fields, found {len(fields)}: "
                                           f"{_clip(line)!r}")
                seen = True
                yield no, fields
    except UnicodeDecodeError as e:
        raise DataError(p, no + 1, f"cannot decode as {encoding}: {e}") from None
    if not seen:
        raise DataError(p, None, "file has no data lines")


def _clip(text: str, n: int = 80) -> str:
    return text if len(text) <= n else text[:n] + "..."


def to_int(path: str | Path, line: int, value: str, what: str) -> int:
    """An ASCII decimal integer that fits in int64, else :class:`DataError`."""
    text = value.strip()
    if not _INT.fullmatch(text):
        if re.fullmatch(r"[+-]?[0-9]+", text):
            raise DataError(path, line, f"{what} {_clip(text)} does not fit in 64 bits")
        raise DataError(path, line, f"{what} is not an integer: {_clip(value)!r}")
    v = int(text)
    if not -INT64_MAX - 1 <= v <= INT64_MAX:
        raise DataError(path, line, f"{what} {text} does not fit in 64 bits")
    return v


def to_float(path: str | Path, line: int, value: str, what: str,
             non_negative: bool = False) -> float:
    """A finite number (``non_negative``: also ``>= 0``), else :class:`DataError`."""
    text = value.strip()
    try:
        if not text.isascii() or "_" in text:
            raise ValueError
        v = float(text)
    except ValueError:
        raise DataError(path, line, f"{what} is not a number: {_clip(value)!r}") from None
    if not math.isfinite(v):
        raise DataError(path, line, f"{what} must be a finite number, got {text}")
    if non_negative and v < 0:
        raise DataError(path, line, f"{what} must not be negative, got {text}")
    return v


def id_limit(n_lines: int) -> int:
    """Largest accepted remapped id + 1 for data of ``n_lines`` lines.

    Remapped ids index embedding tables, so an id far beyond the number of things the
    files can describe is a corrupt line, not a sparse id: ids must be below
    ``max(2**20, 4 * n_lines)``.
    """
    return max(MIN_ID_LIMIT, 4 * int(n_lines))


def check_ids(path: str | Path, ids: np.ndarray, lines: np.ndarray, limit: int,
              what: str) -> None:
    """Raise :class:`DataError` at the first line whose id is negative or ``>= limit``."""
    ids = np.asarray(ids).ravel()
    if ids.size == 0:
        return
    bad = (ids < 0) | (ids >= limit)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        value = int(ids[k])
        reason = f"negative {what} {value}" if value < 0 else \
            f"{what} {value} is too large for this data (ids must be below {limit:,})"
        raise DataError(path, int(lines[k]), reason)


def read_int_rows(path: str | Path, n_cols: int, names: tuple[str, ...] | None = None,
                  sep: str | None = "\t") -> tuple[np.ndarray, np.ndarray]:
    """Read a headerless table of integers: ``(int64 (n, n_cols), line of each row)``.

    Values are only parsed here; the caller bounds them with :func:`check_ids`."""
    names = names or tuple(f"column {k + 1}" for k in range(n_cols))
    rows, lines = [], []
    for no, fields in iter_fields(path, sep=sep, n_fields=n_cols):
        rows.append([to_int(path, no, v, names[k]) for k, v in enumerate(fields)])
        lines.append(no)
    return (np.asarray(rows, dtype=np.int64).reshape(-1, n_cols),
            np.asarray(lines, dtype=np.int64))


def read_int_table(path: str | Path, n_cols: int, names: tuple[str, ...] | None = None,
                   sep: str | None = "\t", limit: int | None = None) -> np.ndarray:
    """Read a headerless table of non-negative integers into ``int64 (n, n_cols)``.

    Every value must be below ``limit`` (default :func:`id_limit` of the row count)."""
    names = names or tuple(f"column {k + 1}" for k in range(n_cols))
    arr, lines = read_int_rows(path, n_cols, names, sep)
    limit = id_limit(len(arr)) if limit is None else limit
    for k in range(n_cols):
        check_ids(path, arr[:, k], lines, limit, names[k])
    return arr
