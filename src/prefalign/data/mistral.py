"""Chat data for `MistralCommonBackend` tokenizers, through mistral-common's own chat encoder.

transformers 5 loads a Mistral model folder that holds a ``tekken.json`` (or a SentencePiece
``tokenizer.model.v*``) as `MistralCommonBackend` when mistral-common is installed. That tokenizer
has no chat template, and its text encoder never turns control tokens written as text
(``[INST]``, ``</s>``) into their ids. Rendering a template to text and tokenizing the text, as
prefalign does for other tokenizers, would therefore give wrong ids. So for chat data:

- prompt ids: mistral-common's encoding of the prompt conversation (validated as for serving:
  it ends with a user turn), exactly what ``encode_chat_completion`` feeds the model;
- response ids: the encoding of prompt + response (validated as for fine-tuning: it ends with the
  assistant turn) minus the prompt ids, which must be its prefix (checked, never assumed). The
  response keeps the turn's closing ``</s>``, as template closers are kept for other tokenizers.

Plain-text data needs none of this: `MistralCommonBackend` encodes plain text (BOS on request)
and prefalign's plain-text path applies. mistral-common strips trailing spaces from assistant
contents; that is the model's own format and is kept.
"""

from __future__ import annotations

import weakref

from .errors import TokenizationError
from .records import Message

_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


_NAMES = {"MistralCommonBackend", "MistralCommonTokenizer"}  # transformers 5, 4.x


def is_mistral_common(tokenizer) -> bool:
    """True for transformers' `MistralCommonBackend` (``MistralCommonTokenizer`` before
    transformers 5), checked by name: no import needed."""
    return any(cls.__name__ in _NAMES for cls in type(tokenizer).__mro__)


class MistralChat:
    """Prompt and prompt+response ids of a conversation, from mistral-common's chat encoder."""

    def __init__(self, tokenizer):
        from mistral_common.protocol.instruct.validator import ValidationMode
        from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

        inner = tokenizer.tokenizer  # the backend's MistralTokenizer
        self.path = str(inner.instruct_tokenizer.tokenizer.file_path)
        self.serving = MistralTokenizer.from_file(self.path, mode=ValidationMode.test)
        self.finetuning = MistralTokenizer.from_file(self.path, mode=ValidationMode.finetuning)
        self.text_tokenizer = inner.instruct_tokenizer.tokenizer  # Tekkenizer / SentencePiece

    @classmethod
    def of(cls, tokenizer) -> "MistralChat":
        """One encoder per tokenizer object (loading the two validators reads the file)."""
        try:
            chat = _CACHE.get(tokenizer)
        except TypeError:  # not weak-referenceable
            return cls(tokenizer)
        if chat is None:
            chat = _CACHE[tokenizer] = cls(tokenizer)
        return chat

    def _encode(self, encoder, messages: list[Message], what: str) -> list[int]:
        from mistral_common.exceptions import MistralCommonException
        from mistral_common.protocol.instruct.request import ChatCompletionRequest

        try:
            request = ChatCompletionRequest.from_openai(messages=[dict(m) for m in messages])
            return list(encoder.encode_chat_completion(request).tokens)
        except (MistralCommonException, ValueError) as error:  # pydantic errors are ValueErrors
            detail = " ".join(str(error).split())[:300]
            raise TokenizationError(f"mistral-common cannot encode the {what}: {detail}") from error

    def prompt_ids(self, messages: list[Message]) -> list[int]:
        """What generation feeds the model: the conversation up to the turn it answers."""
        return self._encode(self.serving, messages, "prompt (it must end with a user turn)")

    def response_ids(self, messages: list[Message], response: list[Message],
                     prompt_ids: list[int]) -> list[int]:
        """The ids after ``prompt_ids`` in the encoding of ``messages + response``."""
        full = self._encode(self.finetuning, list(messages) + list(response),
                            "conversation with its response (it must end with an assistant turn)")
        if full[:len(prompt_ids)] != prompt_ids:
            at = next((i for i, (a, b) in enumerate(zip(prompt_ids, full)) if a != b),
                      min(len(prompt_ids), len(full)))
            raise TokenizationError(
                "mistral-common encodes the prompt differently on its own and as the start of "
                f"the conversation with its response (from token {at}); there is no exact "
                "prompt/response boundary")
        return full[len(prompt_ids):]

    def content_ids(self, text: str) -> list[int]:
        """A message content's ids as mistral-common encodes it (no BOS, no EOS)."""
        return list(self.text_tokenizer.encode(text, bos=False, eos=False))


TEXT_ADVICE = (
    "MistralCommonBackend renders chats only as token ids (mistral-common's chat encoder) and does "
    "not encode control tokens written as text, so no chat template text can give the right ids; "
    "prefalign tokenizes its chat data through mistral-common (tokenize_prompt, tokenize_record, "
    "tokenize_records). To work with rendered text instead, load the Hugging Face tokenizer files "
    "of the model: AutoTokenizer.from_pretrained(path, mistral_format=False)")
