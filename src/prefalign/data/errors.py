"""Errors of the data layer, and where in a source a problem was found.

Every message names the source, the position (a 1-based line for JSONL and CSV, a 0-based row
for Parquet, `datasets` and in-memory data) and the field, then says what to do:

    data.jsonl, line 17, field 'chosen': empty string; every pair needs a non-empty chosen response
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Location:
    """Where a row came from. ``line`` is 1-based (text files); ``row`` is 0-based (tables)."""

    source: str
    line: int | None = None
    row: int | None = None

    def __str__(self) -> str:
        if self.line is not None:
            return f"{self.source}, line {self.line}"
        if self.row is not None:
            return f"{self.source}, row {self.row} (0-based)"
        return self.source


class DataError(ValueError):
    """Bad input data. ``reason`` is a short key (e.g. ``"empty_field"``) used to count skips."""

    def __init__(self, problem: str, *, where: Location | None = None, field: str | None = None,
                 reason: str = "invalid"):
        self.problem = problem
        self.where = where
        self.field = field
        self.reason = reason
        parts = [str(where)] if where is not None else []
        if field is not None:
            parts.append(f"field '{field}'")
        prefix = ", ".join(parts)
        super().__init__(f"{prefix}: {problem}" if prefix else problem)


class TokenizationError(DataError):
    """A record cannot be rendered or tokenized with an exact prompt/response boundary.

    The tokenizer steps raise it without a place; `tokenize_record` adds the record's source
    position and field (`placed`). Reasons in ``SETUP_REASONS`` are about the tokenizer, not
    the row, so they are raised even when bad rows are skipped.
    """

    SETUP_REASONS = frozenset({"no_chat_template", "bad_chat_template", "no_eos_token"})

    def __init__(self, problem: str, *, where: Location | None = None, field: str | None = None,
                 reason: str = "tokenization"):
        super().__init__(problem, where=where, field=field, reason=reason)

    def placed(self, where: Location, field: str) -> TokenizationError:
        """The same problem at ``where``, in ``field`` (unless it already has a place)."""
        if self.where is not None:
            return self
        # the position replaces the "record N: " index some messages start with
        problem = re.sub(r"^record \d+: ", "", self.problem)
        return TokenizationError(problem, where=where, field=self.field or field,
                                 reason=self.reason)
