"""Load preference data from any supported source into validated records.

`load_records` is the one entry point for reading (formats: see `readers`). Every row passes
`validate.parse_row`; a bad row either raises a `DataError` naming the file, line/row and field
(``on_error="raise"``, the default) or is skipped and counted in the returned `LoadReport`
(``on_error="skip"``), with a warning logged. Nothing is dropped silently.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .errors import DataError
from .readers import open_source
from .records import Record
from .validate import detect_kind, parse_row

log = logging.getLogger("prefalign.data")

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
    problem_reasons: list[str] = field(default_factory=list)  # each problem's reason, in order
    max_problems: int = 1000

    def add(self, error: DataError) -> None:
        self.skipped[error.reason] += 1
        if len(self.problems) < self.max_problems:
            self.problems.append(str(error))
            self.problem_reasons.append(error.reason)

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
                 split: str | None = None,
                 keep_whitespace_variants: bool = False) -> tuple[list[Record], LoadReport]:
    """Load and validate records from ``source``.

    ``source`` is a path (``.jsonl``/``.ndjson``, ``.json``, ``.csv``, ``.parquet``/``.pq``, or a
    folder written by ``Dataset.save_to_disk``), a ``datasets.Dataset``/``DatasetDict``, or a
    list of row dicts. ``kind`` (pairwise, unpaired, ranked, sft) is detected from the columns
    when not given. ``split`` picks a split of a ``DatasetDict`` with several.
    A pair whose responses differ only in whitespace is bad like an identical one
    (``whitespace_only_difference``) unless ``keep_whitespace_variants``.
    Returns the records and a `LoadReport`.
    """
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    name, columns, rows = open_source(source, split)
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
            records.append(parse_row(row, row_kind, where,
                                     keep_whitespace_variants=keep_whitespace_variants))
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
