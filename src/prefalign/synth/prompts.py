"""Read prompts-only data (JSONL, JSON, CSV, Parquet, saved `datasets` folders, `Dataset` objects
or lists of dicts) into `PromptItem`s.

`load_records` needs a response column to tell the data kind, so prompts are read here through the
data layer's row readers, with the same error messages: the source, line or row, and field.
A row needs a ``prompt`` (string or chat messages ending with a user/tool turn; the field name is
configurable); ``system`` is optional; every other column is kept in ``meta`` for verifiers.
"""

from __future__ import annotations

from typing import Any

from prefalign.data.errors import DataError, Location
from prefalign.data.readers import open_source
from prefalign.data.validate import ROLES

from .types import PromptItem


def _check_prompt(value: Any, where: Location, name: str):
    if isinstance(value, str):
        if not value.strip():
            raise DataError("empty string; every row needs a non-empty prompt", where=where,
                            field=name, reason="empty_field")
        return value
    if isinstance(value, (list, tuple)):
        if not value:
            raise DataError("empty message list", where=where, field=name, reason="empty_field")
        msgs = []
        for i, m in enumerate(value):
            if not isinstance(m, dict) or not isinstance(m.get("content"), str) or "role" not in m:
                raise DataError(f"message {i} is not a {{'role': ..., 'content': str}} object",
                                where=where, field=name, reason="bad_message")
            if m["role"] not in ROLES:
                raise DataError(f"message {i} has unknown role {m['role']!r}; use one of "
                                f"{sorted(ROLES)}", where=where, field=name, reason="unknown_role")
            msgs.append(dict(m))
        if msgs[-1]["role"] == "assistant":
            raise DataError("the last message is an assistant turn; a prompt ends with the turn "
                            "the model answers", where=where, field=name, reason="bad_message")
        return msgs
    raise DataError(f"expected a string or a list of chat messages, got {type(value).__name__}",
                    where=where, field=name, reason="wrong_type")


def read_prompts(source: Any, *, field: str = "prompt", split: str | None = None,
                 limit: int | None = None) -> list[PromptItem]:
    """Read every prompt of ``source``; a bad row raises `DataError` naming file, line and field."""
    _, _, rows = open_source(source, split)
    items: list[PromptItem] = []
    for where, row in rows:
        if limit is not None and len(items) >= limit:
            break
        if isinstance(row, DataError):
            raise row
        if not isinstance(row, dict):
            raise DataError(f"expected a JSON object, got {type(row).__name__}", where=where,
                            reason="wrong_type")
        if row.get(field) is None:
            raise DataError(f"missing; every row needs a {field!r} column with the prompt",
                            where=where, field=field, reason="missing_field")
        prompt = _check_prompt(row[field], where, field)
        system = row.get("system")
        if system is not None and not isinstance(system, str):
            raise DataError("expected a string", where=where, field="system", reason="wrong_type")
        meta = {k: v for k, v in row.items() if k not in (field, "system")}
        items.append(PromptItem(index=len(items), prompt=prompt, system=system, meta=meta))
    return items
