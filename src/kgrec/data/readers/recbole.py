"""Reader for RecBole's atomic files (layout ``atomic``).

A folder holds ``NAME.inter``, ``NAME.kg`` and ``NAME.link`` (``NAME`` the folder's name,
or any name when there is one file of each kind). Each is tab separated with a header of
``field:type`` names (RecBole's atomic-file convention)::

    NAME.inter   user_id:token  item_id:token  [rating:float | label:float]  [more fields]
    NAME.kg      head_id:token  relation_id:token  tail_id:token
    NAME.link    item_id:token  entity_id:token

Columns are found by field name (``user_id``, ``item_id``, ``label`` else ``rating``,
``head_id``, ``relation_id``, ``tail_id``, ``entity_id``); other fields (timestamps,
sequences) are ignored. The rows then follow the ``csv`` layout's policy
(:mod:`kgrec.data.readers.custom`): a ``label`` field is 0/1, a ``rating`` field is
thresholded by ``rating_threshold`` (every rated row a positive without one), negatives
are sampled when the data has none, duplicates are merged. The ``.link`` file is optional
as in RecBole (items then link to the entity of the same name).
"""

from __future__ import annotations

from pathlib import Path

from kgrec.data.dataset import KGDataset
from kgrec.data.readers.custom import RawData, Table, build, check_ids, parse_values, read_table
from kgrec.errors import DataError

KINDS = ("inter", "kg", "link")


def find_atomic(folder: Path, kind: str, required: bool = True) -> Path | None:
    """``folder/NAME.kind``: the folder's name first, else the only such file."""
    own = folder / f"{folder.name}.{kind}"
    if own.is_file():
        return own
    found = sorted(p for p in folder.glob(f"*.{kind}") if p.is_file())
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise DataError(folder, None, f"several .{kind} files ({', '.join(p.name for p in found)}) "
                        f"and none named {own.name}")
    if required:
        raise DataError(own, None, f"file not found (RecBole atomic layout needs a .{kind} file)")
    return None


def is_atomic(folder: Path) -> bool:
    return any(p.is_file() for p in folder.glob("*.inter"))


def _columns(table: Table, wanted: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, int]:
    """Column index of each wanted field name (the part before ``:``) in the header row."""
    header = table.rows[0]
    names = [h.split(":", 1)[0].strip().lower() for h in header]
    if not all(":" in h for h in header):
        raise DataError(table.path, table.lines[0], "expected a header of field:type names "
                        f"(e.g. {wanted[0]}:token), found {header!r}")
    out = {}
    for name in wanted + optional:
        if name in names:
            out[name] = names.index(name)
        elif name in wanted:
            raise DataError(table.path, table.lines[0], f"no {name} field in the header {header!r}")
    table.header = header
    del table.rows[0], table.lines[0]
    if not table.rows:
        raise DataError(table.path, None, "file has a header and no data lines")
    return out


def _read(path: Path, wanted: tuple[str, ...], optional: tuple[str, ...] = ()) -> tuple[Table, dict]:
    """The atomic file's rows reduced to the wanted columns (in that order)."""
    table = read_table(path, None, path.suffix.lstrip("."), sep="\t")
    cols = _columns(table, wanted, optional)
    keep = [cols[n] for n in wanted + optional if n in cols]
    table.rows = [[row[k] for k in keep] for row in table.rows]
    return table, cols


def read_atomic(folder: str | Path, name: str | None = None) -> RawData:
    """The rows of a RecBole atomic folder, checked line by line."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(folder, None, "dataset folder not found")
    inter, cols = _read(find_atomic(folder, "inter"), ("user_id", "item_id"), ("label", "rating"))
    check_ids(inter, ("user id", "item id"))
    values = kind = None
    if "label" in cols or "rating" in cols:
        kind = "label" if "label" in cols else "rating"
        values, kind = parse_values(inter, 2, kind)
        inter.rows = [r[:2] for r in inter.rows]
    triples, _ = _read(find_atomic(folder, "kg"), ("head_id", "relation_id", "tail_id"))
    check_ids(triples, ("head", "relation", "tail"))
    link_path = find_atomic(folder, "link", required=False)
    links = None
    if link_path is not None:
        links, _ = _read(link_path, ("item_id", "entity_id"))
        check_ids(links, ("item id", "entity id"))
    return RawData(name or folder.name, inter, triples, links, values, kind,
                   meta={"layout": "atomic", "source": str(folder)})


def load_atomic(folder: str | Path, name: str | None = None,
                rating_threshold: float | None = None) -> KGDataset:
    """Read a RecBole atomic folder into a :class:`KGDataset`."""
    return build(read_atomic(folder, name), rating_threshold)
