"""Read preference data from JSONL, JSON, CSV, Parquet, `datasets` folders and in-memory data;
write JSONL and Parquet atomically.

`load_records` is the one entry point for reading. Every row passes `validate.parse_row`; a bad
row either raises a `DataError` naming the file, line/row and field (``on_error="raise"``, the
default) or is skipped and counted in the returned `LoadReport` (``on_error="skip"``), with a
warning logged. Nothing is dropped silently.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import DataError, Location
from .records import Record
from .validate import detect_kind, parse_row

log = logging.getLogger("prefalign.data")

JSONL_SUFFIXES = (".jsonl", ".ndjson")
PARQUET_SUFFIXES = (".parquet", ".pq")
ON_ERROR = ("raise", "skip")


@dataclass
class LoadReport:
    """What `load_records` read, kept, and skipped (counted per reason, with the messages)."""

    source: str
    kind: str | None = None
    rows: int = 0
    loaded: int = 0
    skipped: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    max_problems: int = 1000

    def add(self, error: DataError) -> None:
        self.skipped[error.reason] += 1
        if len(self.problems) < self.max_problems:
            self.problems.append(str(error))

    @property
    def n_skipped(self) -> int:
        return sum(self.skipped.values())

    def summary(self) -> str:
        kind = f"{self.kind} " if self.kind else ""
        text = f"{self.source}: loaded {self.loaded} of {self.rows} {kind}rows"
        if self.skipped:
            reasons = ", ".join(f"{r}: {n}" for r, n in self.skipped.most_common())
            text += f"; skipped {self.n_skipped} ({reasons})"
            if self.problems:
                text += f"; first problem: {self.problems[0]}"
        return text


def load_records(source: Any, kind: str | None = None, *, on_error: str = "raise",
                 split: str | None = None) -> tuple[list[Record], LoadReport]:
    """Load and validate records from ``source``.

    ``source`` is a path (``.jsonl``/``.ndjson``, ``.json``, ``.csv``, ``.parquet``/``.pq``, or a
    folder written by ``Dataset.save_to_disk``), a ``datasets.Dataset``/``DatasetDict``, or a
    list of row dicts. ``kind`` (pairwise, unpaired, ranked, sft) is detected from the columns
    when not given. ``split`` picks a split of a ``DatasetDict`` with several.
    Returns the records and a `LoadReport`.
    """
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    name, columns, rows = _open(source, split)
    report = LoadReport(source=name, kind=kind)
    if kind is None and columns is not None:
        kind = report.kind = detect_kind(columns, name)
    records: list[Record] = []
    for where, row in rows:
        report.rows += 1
        try:
            if isinstance(row, DataError):
                raise row
            row_kind = kind or detect_kind(row.keys(), str(where))
            records.append(parse_row(row, row_kind, where))
            kind = report.kind = row_kind
        except DataError as error:
            if on_error == "raise":
                raise
            report.add(error)
    report.loaded = len(records)
    if report.skipped:
        log.warning("skipped %d of %d rows: %s", report.n_skipped, report.rows, report.summary())
    if report.rows == 0:
        log.warning("%s has no rows", name)
    return records, report


# --- opening sources ----------------------------------------------------------------------------

Rows = Iterator[tuple[Location, Any]]


def _open(source: Any, split: str | None) -> tuple[str, list[str] | None, Rows]:
    """Return (name for messages, column names if the format has a schema, rows)."""
    module = type(source).__module__ or ""
    if module.startswith("datasets"):
        ds = _pick_split(source, split, "the DatasetDict")
        return "<Dataset>", list(ds.column_names), _dataset_rows(ds, "<Dataset>")
    if isinstance(source, (list, tuple)):
        return "<rows>", None, ((Location("<rows>", row=i), r) for i, r in enumerate(source))
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"cannot load records from a {type(source).__name__}; pass a path, a "
                        "datasets.Dataset or a list of dicts")
    path = Path(source)
    name = str(source)
    if not path.exists():
        raise FileNotFoundError(f"{name}: no such file or folder")
    if path.is_dir():
        return _open_saved_dataset(path, name, split)
    suffix = path.suffix.lower()
    if suffix in JSONL_SUFFIXES:
        return name, None, _jsonl_rows(path, name)
    if suffix == ".json":
        return name, None, _json_rows(path, name)
    if suffix == ".csv":
        return _open_csv(path, name)
    if suffix in PARQUET_SUFFIXES:
        return _open_parquet(path, name)
    raise DataError(f"unsupported file type {suffix!r}; use .jsonl, .json, .csv, .parquet or a "
                    "folder saved with Dataset.save_to_disk", where=Location(name),
                    reason="unsupported")


def _pick_split(ds, split, what):
    if hasattr(ds, "column_names") and not isinstance(ds.column_names, dict):
        return ds
    splits = list(ds.keys())
    if split is None and len(splits) == 1:
        split = splits[0]
    if split not in splits:
        raise DataError(f"{what} has splits {splits}; choose one with split=...",
                        reason="unknown_split")
    return ds[split]


def _open_saved_dataset(path: Path, name: str, split):
    if not any((path / f).exists() for f in ("dataset_info.json", "state.json",
                                             "dataset_dict.json")):
        raise DataError("is a folder but not one written by Dataset.save_to_disk",
                        where=Location(name), reason="unsupported")
    import datasets

    ds = _pick_split(datasets.load_from_disk(str(path)), split, name)
    return name, list(ds.column_names), _dataset_rows(ds, name)


def _dataset_rows(ds, name: str) -> Rows:
    i = 0
    for batch in ds.iter(batch_size=1000):
        columns = list(batch)
        for values in zip(*(batch[c] for c in columns)):
            yield Location(name, row=i), dict(zip(columns, values))
            i += 1


def _open_parquet(path: Path, name: str):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        file = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as error:
        raise DataError(f"cannot read as Parquet: {error}", where=Location(name),
                        reason="unreadable") from error

    def rows() -> Rows:
        i = 0
        for batch in file.iter_batches(batch_size=1000):
            for row in batch.to_pylist():
                yield Location(name, row=i), row
                i += 1

    return name, list(file.schema_arrow.names), rows()


def _json_rows(path: Path, name: str) -> Rows:
    """A ``.json`` file: either JSON lines or one JSON array of objects."""
    with open(path, "rb") as f:
        head = f.read(4096).lstrip()
    if not head.startswith(b"["):
        yield from _jsonl_rows(path, name)
        return
    text = path.read_bytes().decode("utf-8", errors="surrogateescape")
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(f"malformed JSON at line {error.lineno}, column {error.colno}: "
                        f"{error.msg}", where=Location(name), reason="malformed_json") from error
    for i, row in enumerate(rows):
        where = Location(name, row=i)
        yield where, _check_object(row, where) or _check_utf8(row, where, None) or row


def _jsonl_rows(path: Path, name: str) -> Rows:
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if not raw.strip():
                continue  # blank lines (a trailing newline, spacing) carry no row
            where = Location(name, line=number)
            try:
                text = raw.decode("utf-8")
                bad = None
            except UnicodeDecodeError as error:
                text = raw.decode("utf-8", errors="surrogateescape")
                bad = error
            try:
                row = json.loads(text)
            except json.JSONDecodeError as error:
                if bad is not None:
                    yield where, _utf8_error(where, None, raw[bad.start], bad.start)
                else:
                    yield where, DataError(f"malformed JSON: {error.msg} at column {error.colno}",
                                           where=where, reason="malformed_json")
                continue
            yield where, _check_object(row, where) or _check_utf8(row, where, bad) or row


def _check_object(row, where):
    if not isinstance(row, dict):
        return DataError(f"expected a JSON object, got {type(row).__name__}", where=where,
                         reason="wrong_type")
    return None


def _utf8_error(where, field_name, byte, position=None):
    at = f" at byte {position} of the line" if position is not None else ""
    return DataError(f"invalid UTF-8 (byte 0x{byte:02x}{at}); re-encode the file as UTF-8",
                     where=where, field=field_name, reason="invalid_utf8")


def _check_utf8(row: dict, where: Location, error: UnicodeDecodeError | None):
    """Name the field whose text held bytes that are not UTF-8 (decoded as lone surrogates)."""
    for key, value in row.items():
        char = _first_surrogate(key) or _first_surrogate(value)
        if char:
            return _utf8_error(where, key, ord(char) - 0xDC00, error.start if error else None)
    if error is not None:
        return _utf8_error(where, None, error.object[error.start], error.start)
    return None


def _first_surrogate(value) -> str | None:
    if isinstance(value, str):
        return next((c for c in value if "\udc80" <= c <= "\udcff"), None)
    if isinstance(value, dict):
        value = [*value.keys(), *value.values()]
    if isinstance(value, (list, tuple)):
        return next((c for c in map(_first_surrogate, value) if c), None)
    return None


# --- CSV ----------------------------------------------------------------------------------------

_TEXT_FIELDS = ("prompt", "chosen", "rejected", "completion")
_LIST_FIELDS = ("completions", "scores")
_NUMBER_FIELDS = ("margin", "score_chosen", "score_rejected")


def _open_csv(path: Path, name: str):
    text = path.read_bytes().decode("utf-8", errors="surrogateescape")
    if text.startswith("\ufeff"):
        text = text[1:]
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        return name, [], iter(())
    except csv.Error as error:
        raise DataError(f"malformed CSV header: {error}", where=Location(name, line=1),
                        reason="malformed_csv") from error

    def rows() -> Rows:
        line = reader.line_num + 1
        while True:
            where = Location(name, line=line)
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as error:
                yield where, DataError(f"malformed CSV: {error}", where=where,
                                       reason="malformed_csv")
                line = reader.line_num + 1
                continue
            line = reader.line_num + 1
            if not cells:
                continue
            yield where, _csv_row(header, cells, where)

    return name, header, rows()


def _csv_row(header: list[str], cells: list[str], where: Location):
    if len(cells) != len(header):
        return DataError(f"{len(cells)} cells but the header has {len(header)} columns",
                         where=where, reason="malformed_csv")
    row = dict(zip(header, cells))
    error = _check_utf8(row, where, None)
    if error is not None:
        return error
    try:
        return {k: _csv_value(k, v, where) for k, v in row.items()}
    except DataError as error:
        return error


def _csv_value(key: str, cell: str, where: Location):
    """CSV cells are text: read lists as JSON, labels as true/false, numbers as floats."""
    if key in _TEXT_FIELDS:
        if cell.lstrip().startswith("[{"):
            with contextlib.suppress(json.JSONDecodeError):
                value = json.loads(cell)
                if isinstance(value, list) and all(isinstance(m, dict) for m in value):
                    return value
        return cell
    if key == "system":
        return cell or None
    if key in _LIST_FIELDS:
        if not cell.strip():
            return None
        try:
            value = json.loads(cell)
        except json.JSONDecodeError:
            value = None
        if not isinstance(value, list):
            raise DataError("expected a JSON list in this CSV cell, e.g. [\"a\", \"b\"] or "
                            "[1.0, 0.5]", where=where, field=key, reason="wrong_type")
        return value
    if key == "label":
        lowered = cell.strip().lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0"):
            return False
        if not lowered:
            return None
        raise DataError(f"expected true or false, got {cell!r}; labels are booleans "
                        "(true = desirable)", where=where, field=key, reason="wrong_type")
    if key in _NUMBER_FIELDS:
        if not cell.strip():
            return None
        try:
            return float(cell)
        except ValueError:
            raise DataError(f"expected a number, got {cell!r}", where=where, field=key,
                            reason="wrong_type") from None
    return cell


# --- writers ------------------------------------------------------------------------------------

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
    try:
        table = pa.Table.from_pylist(rows)
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
