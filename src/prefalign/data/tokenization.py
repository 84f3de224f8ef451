"""Tokenize records with exact prompt/response boundaries.

The prompt ids are exactly what generation feeds the model: the rendered prompt tokenized on its
own (`tokenize_prompt`). The response ids are exactly what the model must predict after them, so
that ``decode(prompt_ids + response_ids)`` is the full rendered text:

1. tokenize prompt + response together; if the prompt ids are a prefix, the rest is the response;
2. otherwise (BPE merged across the boundary, e.g. "the" + "re" -> "there"), tokenize the response
   on its own (or after a newline anchor, for SentencePiece-style prefix spaces) and keep the first
   candidate whose concatenation decodes to the same text as the joint tokenization;
3. if none does, raise `TokenizationError` naming the record. Nothing is guessed or only warned.

Special tokens: rendered chat-template text is tokenized with ``add_special_tokens=False`` (the
template writes its own BOS, as `apply_chat_template` does for generation), so BOS is never doubled.
Plain text gets the tokenizer's BOS once, only if the tokenizer adds one, and an EOS token after
each response.

Two exceptions to tokenizing text: a response whose record carries the token ids synth sampled
(`prefalign.data.sampled`) gets those ids when they apply to this tokenizer and prompt (counted
in the report either way); chat data with a `MistralCommonBackend` tokenizer is encoded by
mistral-common's own chat encoder (`prefalign.data.mistral`), since its text encoder does not
read control tokens.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

from .errors import DataError, Location, TokenizationError
from .records import PairRecord, RankedRecord, Record, Text, UnpairedRecord, is_conversational
from .mistral import MistralChat, is_mistral_common
from .render import _messages, render_prompt, split_render
from .sampled import FIELD as SAMPLED_FIELD
from .sampled import SampledIds, decode_continuation, response_text, tokenizer_fingerprint
from .truncate import check_limits, fit
from .validate import validate_record

log = logging.getLogger("prefalign.data")


@dataclass
class TokenizedExample:
    prompt_ids: list[int]
    responses: list[list[int]]      # pairwise: [chosen, rejected]; unpaired: [completion]; ranked: K completions
    kind: str                       # "pairwise" | "unpaired" | "ranked" | "sft"
    label: bool | None = None       # unpaired
    scores: list[float] | None = None   # ranked (and pairwise: [score_chosen, score_rejected] if given)
    margin: float | None = None     # pairwise
    strength: float | None = None   # pairwise: p(chosen ≻ rejected), for soft-label objectives
    index: int = 0                  # position of the source record, for caching and reporting


@dataclass
class TokenizeReport:
    """What `tokenize_records` kept, cut and dropped, and how boundaries were found."""

    records: int = 0
    examples: int = 0
    policy: str = "keep_start"
    max_length: int | None = None
    max_prompt_length: int | None = None
    truncated: int = 0               # rows with anything cut
    prompt_truncated: int = 0        # rows whose prompt was cut
    responses_truncated: int = 0     # rows with at least one response cut
    dropped: Counter = field(default_factory=Counter)   # reason -> rows
    identical_after_truncation: int = 0  # rows whose responses became identical token lists
    # rows whose different response texts tokenize to the same ids (characters the vocabulary
    # maps to one unknown token, a chat template that drops the content): no preference signal
    identical_tokens: int = 0
    boundary_retokenized: int = 0    # responses tokenized apart because BPE merged the boundary
    skipped: Counter = field(default_factory=Counter)   # reason -> rows (on_error="skip")
    # where response ids came from: the ids synth sampled (prefalign.data.sampled) or the text;
    # sampled_ids_unused: reason -> responses that carried sampled ids tokenized from text
    responses_from_ids: int = 0
    responses_from_text: int = 0
    sampled_ids_unused: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)   # the skipped rows' messages (first 1000)

    @property
    def n_dropped(self) -> int:
        return sum(self.dropped.values())

    @property
    def n_skipped(self) -> int:
        return sum(self.skipped.values())

    def summary(self) -> str:
        text = f"tokenized {self.records} records into {self.examples} examples"
        if self.skipped:
            reasons = ", ".join(f"{r}: {n}" for r, n in self.skipped.most_common())
            text += f"; skipped {self.n_skipped} ({reasons}; first problem: {self.problems[0]})"
        limits = ", ".join(f"{k}={v}" for k, v in (("max_length", self.max_length),
                           ("max_prompt_length", self.max_prompt_length)) if v is not None)
        if self.truncated:
            text += (f"; truncated {self.truncated} ({self.policy}, {limits}: prompt cut in "
                     f"{self.prompt_truncated}, responses cut in {self.responses_truncated})")
        if self.dropped:
            reasons = ", ".join(f"{r}: {n}" for r, n in self.dropped.most_common())
            text += f"; dropped {self.n_dropped} ({self.policy}, {limits}: {reasons})"
        if self.identical_after_truncation:
            text += (f"; {self.identical_after_truncation} rows have identical responses after "
                     "truncation (no preference signal left; raise max_length)")
        if self.identical_tokens:
            text += (f"; {self.identical_tokens} rows have different response texts that tokenize "
                     "to the same ids (no preference signal: the tokenizer maps their difference to "
                     "unknown tokens, or the chat template drops it)")
        if self.boundary_retokenized:
            text += (f"; {self.boundary_retokenized} responses tokenized apart from their prompt "
                     "(token merges across the boundary)")
        if self.responses_from_ids or self.sampled_ids_unused:
            text += f"; {self.sources_summary()}"
        return text

    def sources_summary(self) -> str:
        """``"N responses from sampled token ids, M from text"`` (and why sampled ids went
        unused, if any did)."""
        text = (f"{self.responses_from_ids} responses from sampled token ids, "
                f"{self.responses_from_text} from text")
        if self.sampled_ids_unused:
            reasons = ", ".join(f"{r}: {n}" for r, n in self.sampled_ids_unused.most_common())
            text += (f" (sampled ids of {sum(self.sampled_ids_unused.values())} not used: "
                     f"{reasons})")
        return text


class _Encoder:
    """Tokenizer calls used here, with the tokenizer's BOS/EOS behaviour worked out once."""

    def __init__(self, tokenizer):
        self.tok = tokenizer
        self.bos = tokenizer.bos_token_id
        self.eos = tokenizer.eos_token_id
        probe = "a"
        with_special = tokenizer(probe, add_special_tokens=True)["input_ids"]
        plain = tokenizer(probe, add_special_tokens=False)["input_ids"]
        self.adds_bos = (self.bos is not None and with_special[:1] == [self.bos]
                         and plain[:1] != [self.bos])

    def encode(self, texts: list[str]) -> list[list[int]]:
        return self.tok(texts, add_special_tokens=False)["input_ids"]

    def decode(self, ids: list[int]) -> str:
        return self.tok.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    @cached_property
    def mistral(self) -> MistralChat | None:
        """mistral-common's chat encoder, for `MistralCommonBackend` tokenizers."""
        return MistralChat.of(self.tok) if is_mistral_common(self.tok) else None

    @cached_property
    def fingerprint(self) -> str:
        return tokenizer_fingerprint(self.tok)

    def with_bos(self, prompt: Text, body: list[int]) -> list[int]:
        """Prompt ids from the rendered prompt's ids: BOS once, for plain text only (a chat
        template writes its own)."""
        if not is_conversational(prompt) and self.adds_bos and body[:1] != [self.bos]:
            return [self.bos, *body]
        return list(body)


def tokenize_prompt(prompt: Text, tokenizer, system: str | None = None) -> list[int]:
    """The token ids generation feeds the model for ``prompt`` (template and BOS applied once)."""
    enc = _Encoder(tokenizer)
    if is_conversational(prompt) and enc.mistral is not None:
        return enc.mistral.prompt_ids(_messages(prompt, system))
    return enc.with_bos(prompt, enc.encode([render_prompt(prompt, tokenizer, system)])[0])


def _split(enc: _Encoder, prompt_body: list[int], prompt_text: str, response_text: str,
           index: int) -> tuple[list[int], bool]:
    """Response ids such that decode(prompt_body + ids) == decode(tokenize(prompt + response))."""
    joint = enc.encode([prompt_text + response_text])[0]
    if joint[:len(prompt_body)] == prompt_body:
        return joint[len(prompt_body):], False
    target = enc.decode(joint)
    alone, anchor, anchored = enc.encode([response_text, "\n", "\n" + response_text])
    candidates = [alone]
    if anchored[:len(anchor)] == anchor:
        candidates.append(anchored[len(anchor):])
    for ids in candidates:
        if ids and enc.decode(prompt_body + ids) == target:
            return ids, True
    raise TokenizationError(
        f"record {index}: no exact token boundary between the prompt and the response; the "
        f"prompt ends {prompt_text[-30:]!r} and the response starts {response_text[:30]!r}, and "
        "neither the joint tokenization nor the response tokenized alone decodes back to the "
        f"full text with {type(enc.tok).__name__}")


def _sampled_ids(enc: _Encoder, record: Record,
                 prompt_ids: list[int]) -> tuple[SampledIds | None, str | None]:
    """The record's sampled ids (see `prefalign.data.sampled`) if they can apply to this
    tokenizer and prompt, else None and why not (None when it has none)."""
    if SAMPLED_FIELD not in record.meta:
        return None, None
    sampled = SampledIds.from_meta(record.meta[SAMPLED_FIELD])
    if sampled is None or len(sampled.responses) != len(record.responses):
        return None, "malformed"
    if sampled.tokenizer != enc.fingerprint:
        return None, "tokenizer_differs"
    if sampled.prompt != prompt_ids:
        return None, "prompt_differs"
    return sampled, None


def _from_sampled(enc: _Encoder, sampled: SampledIds, i: int, prompt_ids: list[int],
                  response: Text, closing) -> tuple[list[int] | None, str | None]:
    """Response ``i``'s ids from its sampled ids, plus the ids that close it (``closing(content)``:
    the EOS or the template's turn end); or None and why not."""
    ids = sampled.responses[i]
    content = response_text(response)
    if ids is None:
        return None, "no_ids"
    if any(t >= len(enc.tok) for t in ids):  # the model has no such token: never embed it
        return None, "out_of_vocabulary"
    if content is None:
        return None, "not_one_text"
    if decode_continuation(enc.tok, prompt_ids, ids) != content:
        return None, "text_changed"
    tail = closing(content)
    if tail is None:
        return None, "turn_end"
    return [*ids, *tail], None


def _template_closing(enc: _Encoder, response_text: str, append_eos: bool):
    """The ids after a response's content: EOS for plain text, the text the chat template
    renders after the assistant content (e.g. ``<|im_end|>\\n``) tokenized on its own."""
    def closing(content: str) -> list[int] | None:
        if append_eos:
            return [enc.eos]
        if not response_text.startswith(content):
            return None  # the template changes the content; only the text can say what it reads
        rest = response_text[len(content):]
        return enc.encode([rest])[0] if rest else []
    return closing


def _mistral_closing(chat: MistralChat, text_ids: list[int]):
    """The ids mistral-common writes after the assistant content (``</s>``)."""
    def closing(content: str) -> list[int] | None:
        for text in (content, content.rstrip(" ")):  # it strips trailing spaces
            ids = chat.content_ids(text)
            if text_ids[:len(ids)] == ids:
                return text_ids[len(ids):]
        return None
    return closing


def tokenize_record(record: Record, tokenizer, *, index: int = 0, system: str | None = None,
                    _enc: _Encoder | None = None,
                    _sources: Counter | None = None) -> tuple[TokenizedExample, int]:
    """Tokenize one record without truncation; returns the example and how many responses
    needed the boundary fallback. ``system`` is used when the record has none of its own.

    A response with sampled ids that apply (`prefalign.data.sampled`) gets those ids; the others
    are tokenized from their text. ``_sources`` counts them (``ids``, ``text``, and
    ``unused:REASON`` for sampled ids that did not apply). Chat data with a
    `MistralCommonBackend` tokenizer goes through mistral-common's chat encoder
    (`prefalign.data.mistral`)."""
    enc = _enc or _Encoder(tokenizer)
    system = record.system or system
    where = record.where or Location("records", row=index)
    chat = enc.mistral if is_conversational(record.prompt) else None
    messages = _messages(record.prompt, system) if chat is not None else None
    try:
        if chat is not None:
            prompt_ids = chat.prompt_ids(messages)
        else:
            prompt_text = render_prompt(record.prompt, tokenizer, system)
    except TokenizationError as error:
        raise error.placed(where, "prompt") from error
    if chat is None:
        body = enc.encode([prompt_text])[0]
        prompt_ids = enc.with_bos(record.prompt, body)
    sampled, unused = _sampled_ids(enc, record, prompt_ids)
    sources = Counter() if _sources is None else _sources
    responses, fallbacks = [], 0
    for i, (name, response) in enumerate(zip(record.response_fields, record.responses)):
        ids, fell_back, reason = None, False, unused
        try:
            if chat is not None:
                text_ids = chat.response_ids(messages, response, prompt_ids)
                if sampled is not None:
                    ids, reason = _from_sampled(enc, sampled, i, prompt_ids, response,
                                                _mistral_closing(chat, text_ids))
                ids = text_ids if ids is None else ids
            else:
                _, response_text, append_eos = split_render(record.prompt, response, tokenizer,
                                                            system, prompt_text=prompt_text)
                if sampled is not None:
                    ids, reason = _from_sampled(
                        enc, sampled, i, prompt_ids, response,
                        _template_closing(enc, response_text, append_eos))
                if ids is None:
                    ids, fell_back = _split(enc, body, prompt_text, response_text, index)
                    ids = [*ids, enc.eos] if append_eos else ids
        except TokenizationError as error:
            raise error.placed(where, name) from error
        used = sampled is not None and reason is None
        sources["ids" if used else "text"] += 1
        if reason is not None:
            sources["unused:" + reason] += 1
        responses.append(ids)
        fallbacks += fell_back
    example = TokenizedExample(prompt_ids, responses, record.kind, index=index)
    if isinstance(record, PairRecord):
        example.margin = record.margin
        if record.score_chosen is not None:
            example.scores = [record.score_chosen, record.score_rejected]
    elif isinstance(record, UnpairedRecord):
        example.label = record.label
    elif isinstance(record, RankedRecord):
        example.scores = list(record.scores)
    return example, fallbacks


def tokenize_records(records: Sequence[Record], tokenizer, *, max_length: int | None = None,
                     truncation: str = "keep_start", max_prompt_length: int | None = None,
                     system: str | None = None, on_error: str = "raise",
                     keep_whitespace_variants: bool = False, validated: bool = False,
                     ) -> tuple[list[TokenizedExample], TokenizeReport]:
    """Validate, tokenize and fit ``records``; returns the examples and a `TokenizeReport`.

    ``max_length`` bounds prompt + each response; ``truncation`` is ``keep_start``,
    ``truncate_prompt_left`` or ``drop`` (see `prefalign.data.truncate`). ``system`` is a default
    system prompt for records without one. ``example.index`` is the record's position in
    ``records``, also for the rows kept after drops. A record that cannot be tokenized raises
    a `TokenizationError` naming its source, line or row, and field; with ``on_error="skip"`` it
    is skipped and counted in ``report.skipped`` (problems with the tokenizer itself still raise).
    ``keep_whitespace_variants``: as `load_records`'s (pairs differing only in whitespace pass).
    ``validated``: the records come from `load_records` with the same
    ``keep_whitespace_variants`` and are not validated a second time (records built in Python
    are, with the rules loaded rows follow).
    """
    check_limits(max_length, truncation, max_prompt_length)
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be one of ('raise', 'skip'), got {on_error!r}")
    enc = _Encoder(tokenizer)
    report = TokenizeReport(policy=truncation, max_length=max_length,
                            max_prompt_length=max_prompt_length)
    examples = []
    for index, record in enumerate(records):
        report.records += 1
        try:
            if not validated:
                record = validate_record(record, record.where or Location("records", row=index),
                                         keep_whitespace_variants=keep_whitespace_variants)
            sources: Counter = Counter()
            example, fallbacks = tokenize_record(record, tokenizer, index=index, system=system,
                                                 _enc=enc, _sources=sources)
        except DataError as error:
            if on_error == "raise" or error.reason in TokenizationError.SETUP_REASONS:
                raise
            report.skipped[error.reason] += 1
            if len(report.problems) < 1000:
                report.problems.append(str(error))
            continue
        report.boundary_retokenized += fallbacks
        report.responses_from_ids += sources.pop("ids", 0)
        report.responses_from_text += sources.pop("text", 0)
        report.sampled_ids_unused.update({k.removeprefix("unused:"): n for k, n in sources.items()})
        result = fit(example.prompt_ids, example.responses, max_length=max_length,
                     policy=truncation, max_prompt_length=max_prompt_length,
                     bos_token_id=enc.bos)
        if result.dropped:
            report.dropped[result.dropped] += 1
            continue
        same = _has_identical(example.responses)
        report.identical_tokens += same
        if result.truncated:
            report.truncated += 1
            report.prompt_truncated += result.prompt_cut
            report.responses_truncated += result.responses_cut
            example.prompt_ids, example.responses = result.prompt_ids, result.responses
            if not same and _has_identical(example.responses):
                report.identical_after_truncation += 1
        examples.append(example)
    report.examples = len(examples)
    if report.truncated or report.dropped or report.identical_after_truncation or report.skipped \
            or report.identical_tokens:
        log.warning("%s", report.summary())
    return examples, report


def _has_identical(responses) -> bool:
    return len(responses) > 1 and len(set(map(tuple, responses))) < len(responses)
