"""Write records as JSONL or Parquet, atomically (a temporary file, then `os.replace`)."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from .errors import DataError, Location
from .readers import JSONL_SUFFIXES, PARQUET_SUFFIXES
from .records import Record

@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w"):
    """Write to a temporary file beside ``path``, then `os.replace` it into place.

    Readers see either the old file or the complete new one, never a partial write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


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
