"""Sampled token ids carried by synthesized records, so training trains on what the policy sampled.

Text does not always round-trip through a tokenizer: a SentencePiece-style (Metaspace) or
word-level tokenizer decodes a response on its own without its leading space, and any tokenizer
can sample a token sequence that re-encodes differently ("t" "he" vs "the"). So `prefalign
synth` writes, beside each record's text, the ids it sampled, in one column:

    "sampled_token_ids": {"tokenizer": "sha256:…", "prompt": [ids], "responses": [[ids], …]}

``prompt`` is what generation fed the model (`tokenize_prompt`), ``responses`` one list per
response of the record, in the record's order (chosen, rejected; the completion; the ranked
completions), without the id that ended the response: tokenization adds the end exactly as it
does for text (the EOS token after a plain-text response, the chat template's closing text,
e.g. ``<|im_end|>\\n``, after an assistant turn). ``tokenizer`` is `tokenizer_fingerprint`.

Training uses a response's sampled ids when the fingerprint equals the training tokenizer's, the
prompt ids equal the training prompt ids, and the record's text is still what those ids decode
to (`decode_continuation`; an edited response falls back to its text); otherwise it tokenizes the
text, and counts which (`TokenizeReport.responses_from_ids` / ``responses_from_text``, the reasons
in ``sampled_ids_unused``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from prefalign.core.identity import file_sha256, text_sha256

from .records import Text, is_conversational

FIELD = "sampled_token_ids"


def tokenizer_fingerprint(tokenizer) -> str:
    """``"sha256:<hex>"`` over what decides token ids: the serialized backend (the tokenizers
    JSON without its truncation and padding settings, which calls change; for
    `MistralCommonBackend` the bytes of its tokenizer file; for other Python tokenizers the
    vocabulary), the special tokens and their ids, and the chat template."""
    from .mistral import is_mistral_common

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        state = json.loads(backend.to_str())
        state.pop("truncation", None)
        state.pop("padding", None)
        core = json.dumps(state, sort_keys=True, ensure_ascii=False)
    elif is_mistral_common(tokenizer):
        path = tokenizer.tokenizer.instruct_tokenizer.tokenizer.file_path
        core = "mistral-common:" + file_sha256(path)
    else:
        core = json.dumps(sorted(tokenizer.get_vocab().items()), ensure_ascii=False)
    names = ("bos_token", "eos_token", "pad_token", "unk_token")
    special = {name: [str(getattr(tokenizer, name, None)), getattr(tokenizer, name + "_id", None)]
               for name in names}
    special["all"] = sorted(str(t) for t in getattr(tokenizer, "all_special_tokens", []) or [])
    payload = {"backend": core, "special": special,
               "chat_template": getattr(tokenizer, "chat_template", None)}
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str)
    return "sha256:" + text_sha256(text)


def decode_continuation(tokenizer, prompt_ids: list[int], response_ids: list[int], *,
                        skip_special_tokens: bool = True) -> str:
    """The text of ``response_ids`` as it reads after ``prompt_ids``, as servers' incremental
    detokenizers give it: ``decode(prompt + response)[len(decode(prompt)):]``. Decoded on their
    own, a Metaspace or word-level tokenizer's ids lose the response's leading space, and the
    prompt text + that text no longer encodes to the sampled ids. Falls back to decoding the
    response alone when the prompt's text is not a prefix of the whole (no known decoder)."""
    kwargs = dict(skip_special_tokens=skip_special_tokens, clean_up_tokenization_spaces=False)
    if not response_ids:
        return ""
    prefix = tokenizer.decode(list(prompt_ids), **kwargs)
    whole = tokenizer.decode(list(prompt_ids) + list(response_ids), **kwargs)
    if whole.startswith(prefix):
        return whole[len(prefix):]
    return tokenizer.decode(list(response_ids), **kwargs)


def response_text(response: Text) -> str | None:
    """The text a synthesized response holds: the string, or the content of a single assistant
    message; None for anything else (several messages, content parts)."""
    if not is_conversational(response):
        return response
    if len(response) == 1 and isinstance(response[0].get("content"), str):
        return response[0]["content"]
    return None


@dataclass
class SampledIds:
    tokenizer: str
    prompt: list[int]
    responses: list[list[int] | None]

    def to_meta(self) -> dict:
        return {"tokenizer": self.tokenizer, "prompt": list(self.prompt),
                "responses": [None if r is None else list(r) for r in self.responses]}

    @classmethod
    def from_meta(cls, value) -> "SampledIds | None":
        """The column's value, or None when it is absent or not of this shape."""
        if not isinstance(value, dict):
            return None
        fp, prompt, responses = value.get("tokenizer"), value.get("prompt"), value.get("responses")
        if not isinstance(fp, str) or not _ids(prompt) or not isinstance(responses, list):
            return None
        if not all(r is None or _ids(r) for r in responses):
            return None
        return cls(fp, [int(i) for i in prompt],
                   [None if r is None else [int(i) for i in r] for r in responses])


def select(meta: dict, indices: list[int]) -> dict:
    """A copy of a record's ``meta`` for a record made of its responses ``indices`` (a pair from
    a ranked list, an unpaired row or a demonstration from a pair): the sampled ids follow their
    responses. Meta without (well-formed) sampled ids is copied as it is."""
    meta = dict(meta)
    sampled = SampledIds.from_meta(meta.get(FIELD))
    if sampled is not None and all(0 <= i < len(sampled.responses) for i in indices):
        meta[FIELD] = SampledIds(sampled.tokenizer, sampled.prompt,
                                 [sampled.responses[i] for i in indices]).to_meta()
    return meta


def _ids(value) -> bool:
    return isinstance(value, list) and all(isinstance(i, int) and not isinstance(i, bool)
                                           and i >= 0 for i in value)
