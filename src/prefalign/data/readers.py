"""Row readers, one per input format: each yields ``(Location, row dict or DataError)``.

Formats: JSONL (``.jsonl``/``.ndjson``), JSON (lines or one array), CSV (lists as JSON cells,
labels as true/false), Parquet, folders saved with ``Dataset.save_to_disk``, ``datasets``
objects, and lists of dicts. Text files report 1-based lines; tables report 0-based rows.
Bytes that are not UTF-8 become a `DataError` naming the line and the field they sit in.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import DataError, Location

JSONL_SUFFIXES = (".jsonl", ".ndjson")
PARQUET_SUFFIXES = (".parquet", ".pq")

Rows = Iterator[tuple[Location, Any]]


def open_source(source: Any, split: str | None, *,
                strings: bool = False) -> tuple[str, list[str] | None, Rows]:
    """Return (name for messages, column names if the format has a schema, rows). ``strings``:
    JSON and JSONL rows may be plain strings (prompts-only files), not only objects."""
    module = type(source).__module__ or ""
    if module.startswith("datasets"):
        ds = _pick_split(source, split, "the DatasetDict")
        return "<Dataset>", _columns(ds), _dataset_rows(ds, "<Dataset>")
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
    if not path.is_file():  # /dev/zero, a FIFO, a socket: endless or blocking reads
        raise DataError("not a regular file (a device, pipe or socket); give a data file or "
                        "a saved dataset folder", where=Location(name), reason="not_a_file")
    suffix = path.suffix.lower()
    if suffix in JSONL_SUFFIXES:
        return name, None, _jsonl_rows(path, name, strings)
    if suffix == ".json":
        return name, None, _json_rows(path, name, strings)
    if suffix == ".csv":
        return _open_csv(path, name)
    if suffix in PARQUET_SUFFIXES:
        return _open_parquet(path, name)
    raise DataError(f"unsupported file type {suffix!r}; use .jsonl, .json, .csv, .parquet or a "
                    "folder saved with Dataset.save_to_disk", where=Location(name),
                    reason="unsupported")


def _pick_split(ds, split, what):
    if not hasattr(ds, "keys"):  # a Dataset, not a DatasetDict
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
    return name, _columns(ds), _dataset_rows(ds, name)


def _columns(ds) -> list[str] | None:
    columns = getattr(ds, "column_names", None)  # None for some IterableDatasets
    return list(columns) if columns else None


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


_BOM = b"\xef\xbb\xbf"


def _json_rows(path: Path, name: str, strings: bool = False) -> Rows:
    """A ``.json`` file: JSON lines, one JSON array of rows, or (refused, saying so) one object
    spread over several lines."""
    with open(path, "rb") as f:
        head = f.read(4096)
    head = head[len(_BOM):] if head.startswith(_BOM) else head
    if head.lstrip().startswith(b"{"):
        yield from _object_or_lines(path, name, strings)
        return
    if not head.lstrip().startswith(b"["):
        yield from _jsonl_rows(path, name, strings)
        return
    try:
        rows = _whole_document(path, name)
    except json.JSONDecodeError as error:
        raise _document_error(error, name) from error
    for i, row in enumerate(rows):
        where = Location(name, row=i)
        yield where, _check_object(row, where, strings) or _check_utf8(row, where, None) or row


def _whole_document(path: Path, name: str | None = None):
    text = path.read_bytes().decode("utf-8", errors="surrogateescape")
    try:
        return json.loads(text[1:] if text.startswith("\ufeff") else text)
    except RecursionError:
        raise _too_deep(Location(name or str(path))) from None


def _too_deep(where: Location) -> DataError:
    """Arrays or objects nested past what the JSON decoder can follow (Python's recursion
    limit): a malformed row like any other, not a crash."""
    return DataError("malformed JSON: nested too deeply (lists or objects inside one another "
                     "past the decoder's limit)", where=where, reason="malformed_json")


def _json_msg(error: json.JSONDecodeError) -> str:
    """The decoder's message without its own trailing "at" (``Unterminated string starting
    at``), which the caller's "at column N" would double."""
    msg = error.msg.rstrip()
    return msg[:-3] if msg.endswith(" at") else msg


def _document_error(error: json.JSONDecodeError, name: str) -> DataError:
    return DataError(f"malformed JSON at line {error.lineno}, column {error.colno}: "
                     f"{_json_msg(error)}", where=Location(name), reason="malformed_json")


def _object_or_lines(path: Path, name: str, strings: bool) -> Rows:
    """A ``.json`` file starting with ``{``: JSON lines, unless its first line is not a JSON
    value by itself; then it is one document (one object: refused, it holds no rows)."""
    with open(path, "rb") as f:
        first = next((line for line in f if line.strip()), b"")
    first = first[len(_BOM):] if first.startswith(_BOM) else first
    try:
        json.loads(first.decode("utf-8", errors="surrogateescape"))
    except RecursionError:
        pass  # JSON lines: the row says its own error
    except json.JSONDecodeError:
        try:
            document = _whole_document(path, name)
        except json.JSONDecodeError as error:
            if error.lineno == 1:  # JSON lines with a bad first line: each line says its own
                yield from _jsonl_rows(path, name, strings)
                return
            raise _document_error(error, name) from error  # the real line and column
        raise DataError(
            f"holds one JSON {'object' if isinstance(document, dict) else 'value'} over several "
            "lines, not rows; write a list of row objects ([{...}, {...}]) or one object per line "
            "(JSON lines)", where=Location(name), reason="wrong_type")
    yield from _jsonl_rows(path, name, strings)


def _jsonl_rows(path: Path, name: str, strings: bool = False) -> Rows:
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if number == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM):]
            raw = raw.rstrip(b"\r\n")  # the decoder's column is then on this line
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
            except RecursionError:
                yield where, _too_deep(where)
                continue
            except json.JSONDecodeError as error:
                if bad is not None:
                    yield where, _utf8_error(where, None, raw[bad.start], bad.start)
                else:
                    at = (f"at column {error.colno}" if error.pos < len(text)
                          else f"at the end of the line (column {error.colno})")
                    yield where, DataError(f"malformed JSON: {_json_msg(error)} {at}",
                                           where=where, reason="malformed_json")
                continue
            yield where, _check_object(row, where, strings) or _check_utf8(row, where, bad) or row


def _check_object(row, where, strings: bool = False):
    if strings and isinstance(row, str):
        return None
    if not isinstance(row, dict):
        return DataError(f"expected a JSON object{' or a string' if strings else ''}, got "
                         f"{type(row).__name__}", where=where, reason="wrong_type")
    return None


def _utf8_error(where, field_name, byte, position=None):
    at = f" at byte {position} of the line" if position is not None else ""
    return DataError(f"invalid UTF-8 (byte 0x{byte:02x}{at}); re-encode the file as UTF-8",
                     where=where, field=field_name, reason="invalid_utf8")


def _check_utf8(row: dict, where: Location, error: UnicodeDecodeError | None):
    """Name the field whose text held bytes that are not UTF-8 (decoded as lone surrogates)."""
    if isinstance(row, str):
        row = {None: row}
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
