"""Write records as JSONL or Parquet, atomically (`prefalign.core.files.atomic_write`)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from prefalign.core.files import atomic_write

from .errors import DataError, Location
from .readers import JSONL_SUFFIXES, PARQUET_SUFFIXES
from .records import Record

def _rows(records: Iterable[Record | Mapping[str, Any]]) -> Iterator[dict[str, Any]]:
    for record in records:
        yield dict(record) if isinstance(record, Mapping) else record.to_row()


def _json_default(value):
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "isoformat"):  # dates and times
        return value.isoformat()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot write a {type(value).__name__} to JSON")


def write_jsonl(records: Iterable[Record | Mapping[str, Any]], path: str | os.PathLike) -> Path:
    """Write one JSON object per line (UTF-8, non-ASCII kept as is), atomically."""
    with atomic_write(path) as f:
        for row in _rows(records):
            f.write(json.dumps(row, ensure_ascii=False, default=_json_default))
            f.write("\n")
    return Path(path)


def write_parquet(records: Iterable[Record | Mapping[str, Any]], path: str | os.PathLike) -> Path:
    """Write a Parquet file, atomically. A column holds one type, so keep each column either
    plain text or conversational across rows (JSONL has no such limit)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = list(_rows(records))
    columns = list(dict.fromkeys(key for row in rows for key in row))  # rows may differ in keys
    try:
        table = pa.table({c: pa.array([row.get(c) for row in rows]) for c in columns})
    except (pa.ArrowInvalid, pa.ArrowTypeError) as error:
        raise DataError(f"cannot write as Parquet: {error}; a Parquet column holds one type, so "
                        "rows mixing plain text and message lists need JSONL instead",
                        where=Location(str(path)), reason="mixed_types") from error
    with atomic_write(path, "wb") as f:
        pq.write_table(table, f)
    return Path(path)


def save_records(records: Iterable[Record | Mapping[str, Any]], path: str | os.PathLike) -> Path:
    """Write records to ``path``, choosing JSONL or Parquet from its suffix."""
    suffix = Path(path).suffix.lower()
    if suffix in JSONL_SUFFIXES:
        return write_jsonl(records, path)
    if suffix in PARQUET_SUFFIXES:
        return write_parquet(records, path)
    raise ValueError(f"cannot write {path}: use a .jsonl or .parquet file name")
