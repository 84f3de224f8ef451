"""Read prompts-only data (JSONL, JSON, CSV, Parquet, saved `datasets` folders, `Dataset` objects,
lists of dicts or of prompts, ``.txt`` files with one prompt per line) into `PromptItem`s, with
the training data's checks and messages (the source, line or row, and field): the one reader,
`prefalign.data.prompts`, which eval reads its prompts with too.

A row needs a ``prompt`` (string or chat messages ending with a user/tool turn; the field name is
configurable); ``system`` is optional; every other column is kept in ``meta`` for verifiers.
"""

from __future__ import annotations

from typing import Any

from prefalign.data.prompts import read_prompt_rows
from prefalign.generation.types import PromptItem


def read_prompts(source: Any, *, field: str = "prompt", split: str | None = None,
                 limit: int | None = None) -> list[PromptItem]:
    """Read every prompt of ``source``; a bad row raises `DataError` naming file, line and field."""
    rows = read_prompt_rows(source, field=field, split=split, limit=limit, strings=True)
    return [PromptItem(index=i, prompt=r.prompt, system=r.system, meta=r.meta)
            for i, r in enumerate(rows)]
