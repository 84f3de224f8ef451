"""Preference data: records, readers and writers, validation, chat templates, tokenization.

    records, report = load_records("pairs.jsonl")             # raises DataError on a bad row
    records, report = load_records("pairs.jsonl", on_error="skip"); print(report.summary())
    examples, tok_report = tokenize_records(records, tokenizer, max_length=1024)

See docs/data.md for the formats, the boundary rules and the truncation policies.
"""

from .convert import ConvertReport, pairs_to_sft, pairs_to_unpaired, ranked_to_pairs
from .errors import DataError, Location, TokenizationError
from .io import LoadReport, load_records
from .writers import save_records, write_jsonl, write_parquet
from .records import (
    KINDS, Message, PairRecord, RankedRecord, Record, SFTRecord, Text, UnpairedRecord,
    is_conversational)
from .render import render_prompt, render_response
from .tokenization import (
    TokenizedExample, TokenizeReport, tokenize_prompt, tokenize_record, tokenize_records)
from .truncate import POLICIES as TRUNCATION_POLICIES
from .validate import ROLES, detect_kind, parse_row, validate_record

__all__ = [
    "KINDS", "ROLES", "TRUNCATION_POLICIES",
    "Message", "Text", "Record", "PairRecord", "UnpairedRecord", "RankedRecord", "SFTRecord",
    "is_conversational",
    "DataError", "TokenizationError", "Location",
    "load_records", "LoadReport", "save_records", "write_jsonl", "write_parquet",
    "detect_kind", "parse_row", "validate_record",
    "render_prompt", "render_response",
    "TokenizedExample", "TokenizeReport", "tokenize_prompt", "tokenize_record",
    "tokenize_records",
    "ranked_to_pairs", "pairs_to_unpaired", "pairs_to_sft", "ConvertReport",
]
