"""Check one row of input data and turn it into a record, or say exactly what is wrong.

`parse_row` is the single gate every row passes through, whatever file it came from; the
messages it raises name the source, the line or row, and the field (see `errors.Location`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from numbers import Real
from typing import Any

from .errors import DataError, Location
from .records import (
    RECORD_TYPES, PairRecord, RankedRecord, Record, SFTRecord, UnpairedRecord, is_conversational)

ROLES = ("system", "user", "assistant", "tool")

# What each field is for, appended to "missing" and "empty" problems so the user knows why.
_NEEDS = {
    ("pairwise", "prompt"): "every pair needs a prompt",
    ("pairwise", "chosen"): "every pair needs a non-empty chosen response",
    ("pairwise", "rejected"): "every pair needs a non-empty rejected response",
    ("unpaired", "prompt"): "every row needs a prompt",
    ("unpaired", "completion"): "every row needs a non-empty completion",
    ("unpaired", "label"): "every unpaired row needs a boolean label (true = desirable)",
    ("ranked", "prompt"): "every row needs a prompt",
    ("ranked", "completions"): "every ranked row needs a list of at least 2 completions",
    ("ranked", "scores"): "every ranked row needs one score per completion",
    ("sft", "prompt"): "every demonstration needs a prompt",
    ("sft", "completion"): "every demonstration needs a non-empty completion",
    ("prompts", "prompt"): "every row needs a prompt",
}


def detect_kind(columns: Iterable[str], source: str = "data") -> str:
    """Tell the data kind from column names: pairwise, ranked, unpaired or sft."""
    cols = set(columns)
    if {"chosen", "rejected"} <= cols:
        return "pairwise"
    if {"completions", "scores"} <= cols:
        return "ranked"
    if {"completion", "label"} <= cols:
        return "unpaired"
    if "completion" in cols:
        return "sft"
    raise DataError(
        f"cannot tell the data kind from the columns {sorted(cols)}; expected 'chosen'+'rejected' "
        "(pairwise), 'completions'+'scores' (ranked), 'completion'+'label' (unpaired) or "
        "'completion' (sft), or pass kind=...", where=Location(source), reason="unknown_kind")


def parse_row(row: Mapping[str, Any], kind: str, where: Location, *,
              keep_whitespace_variants: bool = False) -> Record:
    """Validate ``row`` (a column -> value mapping) as a record of ``kind`` and return it.
    A pair whose responses differ only in whitespace is refused like an identical one
    (``whitespace_only_difference``) unless ``keep_whitespace_variants``."""
    if kind not in _PARSERS:
        raise ValueError(f"unknown data kind {kind!r}; choose one of {sorted(_PARSERS)}")
    if not isinstance(row, Mapping):
        raise DataError(f"expected an object with named fields, got {type(row).__name__}",
                        where=where, reason="wrong_type")
    record = (_parse_pairwise(row, where, keep_whitespace_variants) if kind == "pairwise"
              else _PARSERS[kind](row, where))
    known = RECORD_TYPES[kind].FIELDS
    record.meta = {k: v for k, v in row.items() if k not in known}
    record.where = where
    return record


def validate_record(record: Record, where: Location | None = None, *,
                    keep_whitespace_variants: bool = False) -> Record:
    """Check a record built in Python with the same rules as loaded rows; returns a clean copy.
    Problems are placed at ``where``, else where the record was loaded from."""
    return parse_row(record.to_row(), record.kind, where or record.where or Location("record"),
                     keep_whitespace_variants=keep_whitespace_variants)


# --- field checks -------------------------------------------------------------------------------

def _fail(where, field, problem, reason):
    raise DataError(problem, where=where, field=field, reason=reason)


def _need(kind, field):
    if kind == "prompts":  # prompts-only data: the prompt field may have another name
        return _NEEDS[("prompts", "prompt")]
    return _NEEDS.get((kind, field), f"field '{field}' is required")


def whitespace_key(response) -> str:
    """``response`` (a string or messages) with all whitespace removed: two responses with the
    same key differ in whitespace only (a pair of them teaches nothing but spacing)."""
    if isinstance(response, str):
        return "".join(response.split())
    return json.dumps([{k: "".join(v.split()) if k == "content" and isinstance(v, str) else v
                        for k, v in m.items()} for m in response], sort_keys=True, default=str)


def _text(row, field, kind, where, *, value=None, name=None):
    """A plain string or a message list; ``value``/``name`` check a list element instead."""
    name = name or field
    if value is None:
        value = row.get(field)
    if value is None:
        _fail(where, name, f"missing; {_need(kind, field)}", "missing_field")
    if isinstance(value, str):
        if not value.strip():
            what = "empty string" if not value else "only whitespace"
            _fail(where, name, f"{what}; {_need(kind, field)}", "empty_field")
        return value
    if isinstance(value, (list, tuple)):
        return _messages(value, name, where)
    _fail(where, name, f"expected a string or a list of chat messages, got "
          f"{type(value).__name__}", "wrong_type")


def _messages(value, field, where):
    if not value:
        _fail(where, field, "empty message list", "empty_field")
    out = []
    for i, message in enumerate(value, start=1):
        if not isinstance(message, Mapping):
            _fail(where, field, f"message {i} is a {type(message).__name__}; expected an object "
                  "with 'role' and 'content'", "bad_message")
        # Parquet/Arrow fill absent struct keys with None; drop them so templates see them absent.
        message = {k: v for k, v in message.items() if v is not None}
        if "role" not in message:
            _fail(where, field, f"message {i} has no 'role'", "bad_message")
        role = message["role"]
        if role not in ROLES:
            _fail(where, field, f"message {i} has unknown role {role!r}; roles are "
                  f"{', '.join(ROLES)}", "unknown_role")
        content = message.get("content")
        if "tool_calls" not in message:
            if content is None:
                _fail(where, field, f"message {i} has no 'content'", "bad_message")
            if not isinstance(content, str):
                _fail(where, field, f"message {i} 'content' is a {type(content).__name__}; "
                      "expected a string", "bad_message")
            if not content.strip():
                _fail(where, field, f"message {i} ({role}) has empty content", "empty_field")
        out.append(message)
    return out


def _prompt(row, kind, where, field="prompt"):
    prompt = _text(row, field, kind, where)
    if is_conversational(prompt) and prompt[-1]["role"] == "assistant":
        _fail(where, field, "the prompt ends with an assistant message; a prompt must end with "
              "the turn the model answers (usually 'user'); move the assistant reply into the "
              "response field", "bad_message")
    return prompt


def parse_prompt_row(row: Mapping[str, Any], where: Location, field: str = "prompt"):
    """A prompts-only row (eval and synth prompts) checked by the training data's rules:
    returns ``(prompt, system)``; problems raise `DataError` with the place and field."""
    if not isinstance(row, Mapping):
        raise DataError(f"expected an object with named fields, got {type(row).__name__}",
                        where=where, reason="wrong_type")
    prompt = _prompt(row, "prompts", where, field)
    return prompt, _system(row, prompt, where)


def _response(row, field, kind, where, prompt, *, value=None, name=None):
    name = name or field
    response = _text(row, field, kind, where, value=value, name=name)
    if is_conversational(response) != is_conversational(prompt):
        fmt = "a message list" if is_conversational(response) else "a plain string"
        other = "a message list" if is_conversational(prompt) else "a plain string"
        _fail(where, name, f"is {fmt} but 'prompt' is {other}; use one format per row",
              "wrong_type")
    if is_conversational(response) and response[0]["role"] != "assistant":
        _fail(where, name, f"a response must start with an assistant message, got role "
              f"{response[0]['role']!r}", "bad_message")
    if is_conversational(response) and response[-1]["role"] != "assistant":
        _fail(where, name, f"a response must end with an assistant message, got role "
              f"{response[-1]['role']!r}; the model would learn to write that turn", "bad_message")
    return response


def _number(value, field, where, *, required=False, kind=""):
    if value is None:
        if required:
            _fail(where, field, f"missing; {_need(kind, field)}", "missing_field")
        return None
    if isinstance(value, bool) or not isinstance(value, Real):
        _fail(where, field, f"expected a number, got {type(value).__name__} {value!r}",
              "wrong_type")
    value = float(value)
    if not math.isfinite(value):
        _fail(where, field, f"expected a finite number, got {value}", "wrong_type")
    return value


def _system(row, prompt, where):
    system = row.get("system")
    if system is None:
        return None
    if not isinstance(system, str):
        _fail(where, "system", f"expected a string, got {type(system).__name__}", "wrong_type")
    if not system.strip():
        _fail(where, "system", "empty string; leave the system prompt out instead", "empty_field")
    if is_conversational(prompt) and prompt[0]["role"] == "system":
        _fail(where, "system", "given both as a 'system' column and as a system message in "
              "'prompt'; keep one", "duplicate_system")
    return system


# --- one parser per kind ------------------------------------------------------------------------

def _implicit_prompt(row, where):
    """TRL's implicit-prompt form: no 'prompt' column; chosen and rejected both start with it.

    Strings: the longest common prefix, cut back to a word boundary (`_shared_text`). Message
    lists: the shared leading turns, less any trailing assistant turns (the prompt ends with the
    turn the model answers). A side that is entirely the shared part leaves no response: refused.
    """
    chosen = _text(row, "chosen", "pairwise", where)
    rejected = _text(row, "rejected", "pairwise", where)
    if is_conversational(chosen) != is_conversational(rejected):
        fmt = "a message list" if is_conversational(rejected) else "a plain string"
        other = "a message list" if is_conversational(chosen) else "a plain string"
        _fail(where, "rejected", f"is {fmt} but 'chosen' is {other}; use one format per row",
              "wrong_type")
    if chosen == rejected:
        _fail(where, "rejected", "identical to 'chosen'; a pair needs two different responses",
              "identical_responses")
    shared = 0  # length of the longest common prefix (characters or turns)
    while shared < min(len(chosen), len(rejected)) and chosen[shared] == rejected[shared]:
        shared += 1
    for name, value, other in (("chosen", chosen, "rejected"), ("rejected", rejected, "chosen")):
        if shared == len(value):
            _fail(where, name, f"is the start of '{other}', so no response is left once the "
                  "shared prompt is cut off; add a 'prompt' column", "empty_response")
    if is_conversational(chosen):
        n = shared
        while n > 0 and chosen[n - 1]["role"] == "assistant":
            n -= 1
        empty = n == 0
    else:
        n = _shared_text(chosen, shared)
        empty = not chosen[:n].strip()
    if empty:
        _fail(where, "prompt", "missing, and chosen/rejected share no leading "
              f"{'turns' if is_conversational(chosen) else 'words'} to use as the prompt; add a "
              "'prompt' column", "no_shared_prompt")
    return {**row, "prompt": chosen[:n], "chosen": chosen[n:], "rejected": rejected[n:]}


def _shared_text(text: str, shared: int) -> int:
    """Where the implicit prompt of two strings ends, given their common prefix length ``shared``.

    TRL's `extract_prompt` ends the prompt at the first differing character, moving one space
    before it into the responses. It can split a word ("The ca" + "t"/"r"), which leaves odd
    responses and a BPE merge across the boundary, so a prefix ending inside a word (on a
    non-whitespace character) is first cut back to just after its last whitespace.
    """
    n = shared
    if n and not text[n - 1].isspace():
        n = max((i + 1 for i in range(n) if text[i].isspace()), default=0)
    if n and text[n - 1] == " ":  # TRL: the space before the responses goes with them
        n -= 1
    return n


def _parse_pairwise(row, where, keep_whitespace_variants=False):
    if row.get("prompt") is None and row.get("chosen") is not None:
        row = _implicit_prompt(row, where)
    prompt = _prompt(row, "pairwise", where)
    chosen = _response(row, "chosen", "pairwise", where, prompt)
    rejected = _response(row, "rejected", "pairwise", where, prompt)
    if chosen == rejected:
        _fail(where, "rejected", "identical to 'chosen'; a pair needs two different responses",
              "identical_responses")
    if not keep_whitespace_variants and whitespace_key(chosen) == whitespace_key(rejected):
        _fail(where, "rejected", "differs from 'chosen' only in whitespace; a pair needs two "
              "responses that differ in content", "whitespace_only_difference")
    margin = _number(row.get("margin"), "margin", where)
    sc = _number(row.get("score_chosen"), "score_chosen", where)
    sr = _number(row.get("score_rejected"), "score_rejected", where)
    if (sc is None) != (sr is None):
        missing = "score_rejected" if sr is None else "score_chosen"
        _fail(where, missing, "missing while its partner score is given; give both scores or "
              "neither", "missing_field")
    return PairRecord(prompt, chosen, rejected, margin=margin, score_chosen=sc,
                      score_rejected=sr, system=_system(row, prompt, where))


def _label(row, where):
    label = row.get("label")
    if label is None:
        _fail(where, "label", f"missing; {_need('unpaired', 'label')}", "missing_field")
    if type(label).__name__ not in ("bool", "bool_"):
        _fail(where, "label", f"expected true or false, got {type(label).__name__} {label!r}; "
              "labels are booleans (true = desirable)", "wrong_type")
    return bool(label)


def _parse_unpaired(row, where):
    prompt = _prompt(row, "unpaired", where)
    completion = _response(row, "completion", "unpaired", where, prompt)
    return UnpairedRecord(prompt, completion, _label(row, where),
                          system=_system(row, prompt, where))


def _parse_sft(row, where):
    prompt = _prompt(row, "sft", where)
    completion = _response(row, "completion", "sft", where, prompt)
    if row.get("label") is not None and _label(row, where) is False:
        _fail(where, "label", "false in SFT data; SFT imitates every completion, so keep only "
              "desirable rows or load with kind='unpaired'", "undesirable_in_sft")
    return SFTRecord(prompt, completion, system=_system(row, prompt, where))


def _parse_ranked(row, where):
    prompt = _prompt(row, "ranked", where)
    completions = row.get("completions")
    if completions is None:
        _fail(where, "completions", f"missing; {_need('ranked', 'completions')}", "missing_field")
    if not isinstance(completions, (list, tuple)):
        _fail(where, "completions", f"expected a list, got {type(completions).__name__}",
              "wrong_type")
    if len(completions) < 2:
        _fail(where, "completions", f"{len(completions)} completion(s); a ranked row needs at "
              "least 2 to compare", "too_few_completions")
    completions = [
        _response(row, "completions", "ranked", where, prompt, value=c, name=f"completions[{i}]")
        for i, c in enumerate(completions)]
    scores = row.get("scores")
    if scores is None:
        _fail(where, "scores", f"missing; {_need('ranked', 'scores')}", "missing_field")
    if not isinstance(scores, (list, tuple)):
        _fail(where, "scores", f"expected a list of numbers, got {type(scores).__name__}",
              "wrong_type")
    if len(scores) != len(completions):
        _fail(where, "scores", f"{len(scores)} scores for {len(completions)} completions; give one "
              "score per completion", "length_mismatch")
    scores = [_number(s, f"scores[{i}]", where, required=True, kind="ranked")
              for i, s in enumerate(scores)]
    return RankedRecord(prompt, completions, scores, system=_system(row, prompt, where))


_PARSERS = {"pairwise": _parse_pairwise, "unpaired": _parse_unpaired, "ranked": _parse_ranked,
            "sft": _parse_sft}
