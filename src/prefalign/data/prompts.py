"""Prompts-only data (the prompts synth samples from, the prompts eval samples from).

`load_records` needs a response column to tell the data kind, so prompts are read here, through
the same row readers (JSONL, JSON, CSV, Parquet, saved `datasets` folders, `Dataset` objects,
lists of dicts) and the same checks as training data's prompts (`validate.parse_prompt_row`),
with the same messages: the source, the line or row, and the field. A row needs a prompt (a
string, or chat messages ending with the turn the model answers; the field name is
configurable); ``system`` is optional; every other column is kept in ``meta``.

With ``strings=True`` a row may also be the prompt itself (a string in a file; a string or a
message list in a Python list), and a ``.txt`` file holds one prompt per non-blank line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import DataError, Location
from .readers import open_source
from .validate import parse_prompt_row


@dataclass
class PromptRow:
    where: Location
    prompt: Any  # a string or a list of chat messages
    system: str | None = None
    meta: dict = field(default_factory=dict)


def _text_rows(path: Path, name: str):
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as error:
                yield Location(name, line=number), DataError(
                    f"invalid UTF-8 (byte 0x{raw[error.start]:02x} at byte {error.start} of the "
                    "line); re-encode the file as UTF-8", where=Location(name, line=number),
                    reason="invalid_utf8")
                continue
            if line.strip():
                yield Location(name, line=number), line


def read_prompt_rows(source: Any, *, field: str = "prompt", split: str | None = None,
                     limit: int | None = None, strings: bool = False) -> list[PromptRow]:
    """Every prompt of ``source`` (see the module docstring); a bad row raises `DataError`."""
    if strings and isinstance(source, (str, os.PathLike)) and Path(source).suffix == ".txt":
        if not Path(source).exists():
            raise FileNotFoundError(f"{source}: no such file")
        if not Path(source).is_file():
            raise DataError("not a regular file (a device, pipe or socket); give a prompts file",
                            where=Location(str(source)), reason="not_a_file")
        rows = _text_rows(Path(source), str(source))
    else:
        _, _, rows = open_source(source, split, strings=strings)
    out: list[PromptRow] = []
    for where, row in rows:
        if limit is not None and len(out) >= limit:
            break
        if isinstance(row, DataError):
            raise row
        if strings and isinstance(row, (str, list, tuple)):  # the prompt itself
            row = {field: row}
        prompt, system = parse_prompt_row(row, where, field)
        meta = {k: v for k, v in row.items() if k not in (field, "system")}
        out.append(PromptRow(where, prompt, system, meta))
    return out
