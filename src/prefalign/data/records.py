"""The shapes preference data comes in, as plain dataclasses with TRL-compatible field names.

A text field is either a plain string or a chat message list ``[{"role": ..., "content": ...}]``.
Conversational records have a prompt that is a message list ending with the turn the model
answers, and responses that are message lists starting with an assistant message.

Columns a record does not know (ids, sources, ...) are kept in ``meta`` and written back out as
columns, so a dataset goes through load -> convert -> save without losing anything. ``where`` is
the row's place in its source (file and line, or row), so later steps (tokenization) can name
it; records built in Python have none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Union

from .errors import Location

Message = dict[str, Any]
Text = Union[str, list[Message]]


def is_conversational(value: Any) -> bool:
    """True for a chat message list, False for a plain string."""
    return isinstance(value, list)


def _row(record, names: tuple[str, ...]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for name in names:
        value = getattr(record, name)
        if value is not None:
            row[name] = value
    if record.system is not None:
        row["system"] = record.system
    for key, value in record.meta.items():
        if key in row or key in record.FIELDS:
            raise ValueError(f"meta key {key!r} collides with the record field of the same name")
        row[key] = value
    return row


@dataclass
class PairRecord:
    """One prompt with a preferred (``chosen``) and a dispreferred (``rejected``) response."""

    prompt: Text
    chosen: Text
    rejected: Text
    margin: float | None = None
    score_chosen: float | None = None
    score_rejected: float | None = None
    system: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    where: Location | None = field(default=None, compare=False, repr=False)  # set by load_records

    kind: ClassVar[str] = "pairwise"
    FIELDS: ClassVar[tuple[str, ...]] = (
        "prompt", "chosen", "rejected", "margin", "score_chosen", "score_rejected", "system")

    @property
    def responses(self) -> list[Text]:
        return [self.chosen, self.rejected]

    @property
    def response_fields(self) -> list[str]:  # the field each of `responses` came from
        return ["chosen", "rejected"]

    def to_row(self) -> dict[str, Any]:
        return _row(self, self.FIELDS[:-1])


@dataclass
class UnpairedRecord:
    """One prompt with one response labelled desirable (True) or undesirable (False), as KTO uses."""

    prompt: Text
    completion: Text
    label: bool
    system: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    where: Location | None = field(default=None, compare=False, repr=False)  # set by load_records

    kind: ClassVar[str] = "unpaired"
    FIELDS: ClassVar[tuple[str, ...]] = ("prompt", "completion", "label", "system")

    @property
    def responses(self) -> list[Text]:
        return [self.completion]

    @property
    def response_fields(self) -> list[str]:  # the field each of `responses` came from
        return ["completion"]

    def to_row(self) -> dict[str, Any]:
        return _row(self, self.FIELDS[:-1])


@dataclass
class RankedRecord:
    """One prompt with K >= 2 responses and a score for each (higher is better)."""

    prompt: Text
    completions: list[Text]
    scores: list[float]
    system: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    where: Location | None = field(default=None, compare=False, repr=False)  # set by load_records

    kind: ClassVar[str] = "ranked"
    FIELDS: ClassVar[tuple[str, ...]] = ("prompt", "completions", "scores", "system")

    @property
    def responses(self) -> list[Text]:
        return list(self.completions)

    @property
    def response_fields(self) -> list[str]:  # the field each of `responses` came from
        return [f"completions[{i}]" for i in range(len(self.completions))]

    def to_row(self) -> dict[str, Any]:
        return _row(self, self.FIELDS[:-1])


@dataclass
class SFTRecord:
    """One prompt with a demonstration to imitate (``--objective sft``). No label: all are good."""

    prompt: Text
    completion: Text
    system: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    where: Location | None = field(default=None, compare=False, repr=False)  # set by load_records

    kind: ClassVar[str] = "sft"
    FIELDS: ClassVar[tuple[str, ...]] = ("prompt", "completion", "system")

    @property
    def responses(self) -> list[Text]:
        return [self.completion]

    @property
    def response_fields(self) -> list[str]:  # the field each of `responses` came from
        return ["completion"]

    def to_row(self) -> dict[str, Any]:
        return _row(self, self.FIELDS[:-1])


Record = Union[PairRecord, UnpairedRecord, RankedRecord, SFTRecord]
RECORD_TYPES: dict[str, type] = {
    cls.kind: cls for cls in (PairRecord, UnpairedRecord, RankedRecord, SFTRecord)}
KINDS = tuple(RECORD_TYPES)
