"""Turn a prompt and a response into the exact text the model reads and the text it must write.

Conversational data goes through the tokenizer's chat template: the prompt is rendered with the
generation prompt (``<|im_start|>assistant\\n``), and the response is whatever the template adds
after it for the full conversation (the assistant content *and* the turn's closing tokens, e.g.
``<|im_end|>\\n``). Plain-text data is used verbatim, and the response ends with the EOS token,
as TRL does; a chat template never touches plain text.

A ``system`` prompt is added as a leading system message for conversational data, or as a
paragraph (``system + "\\n\\n"``) before a plain-text prompt.
"""

from __future__ import annotations

from .errors import TokenizationError
from .records import Message, Text, is_conversational


def _messages(prompt: list[Message], system: str | None) -> list[Message]:
    if system and not (prompt and prompt[0].get("role") == "system"):
        return [{"role": "system", "content": system}, *prompt]
    return list(prompt)


def _template(tokenizer, messages: list[Message], *, generation_prompt: bool) -> str:
    from jinja2 import TemplateError, TemplateSyntaxError

    from .mistral import TEXT_ADVICE, is_mistral_common

    if is_mistral_common(tokenizer):  # setting a chat_template would give wrong ids; say why
        raise TokenizationError(f"chat data cannot be rendered as text with "
                                f"{type(tokenizer).__name__}: {TEXT_ADVICE}",
                                reason="no_chat_template")
    if not getattr(tokenizer, "chat_template", None):
        raise TokenizationError(
            f"conversational data needs a tokenizer with a chat template, and "
            f"{type(tokenizer).__name__} has none; set tokenizer.chat_template or use plain-text "
            "prompts and responses", reason="no_chat_template")
    try:
        return tokenizer.apply_chat_template(messages, tokenize=False,
                                             add_generation_prompt=generation_prompt)
    except TemplateSyntaxError as error:  # the template itself is broken: not this row's fault
        raise TokenizationError(f"the chat template does not compile: {_one_line(error)}",
                                reason="bad_chat_template") from error
    except TemplateError as error:  # e.g. raise_exception('roles must alternate ...')
        raise TokenizationError(f"the chat template refused this conversation: "
                                f"{_one_line(error)}", reason="chat_template_error") from error


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def render_prompt(prompt: Text, tokenizer, system: str | None = None) -> str:
    """The text the model is fed before it answers (what generation sees)."""
    if is_conversational(prompt):
        return _template(tokenizer, _messages(prompt, system), generation_prompt=True)
    return f"{system}\n\n{prompt}" if system else prompt


def split_render(prompt: Text, response: Text, tokenizer, system: str | None = None, *,
                 prompt_text: str | None = None) -> tuple[str, str, bool]:
    """Return ``(prompt_text, response_text, append_eos)``; the EOS *token* is appended by the
    tokenizer step (never as text, so it cannot be split or merged). Pass ``prompt_text`` when
    `render_prompt` already made it."""
    if prompt_text is None:
        prompt_text = render_prompt(prompt, tokenizer, system)
    if not is_conversational(prompt):
        eos = getattr(tokenizer, "eos_token", None)
        if eos is None or getattr(tokenizer, "eos_token_id", None) is None:
            raise TokenizationError(
                f"{type(tokenizer).__name__} has no EOS token; plain-text responses end with EOS "
                "so the model learns to stop. Set tokenizer.eos_token first", reason="no_eos_token")
        return prompt_text, response, not response.endswith(eos)
    full = _template(tokenizer, _messages(prompt, system) + list(response),
                     generation_prompt=False)
    if not full.startswith(prompt_text):
        at = next((i for i, (a, b) in enumerate(zip(prompt_text, full)) if a != b),
                  min(len(prompt_text), len(full)))
        raise TokenizationError(
            "the chat template renders the prompt (with its generation prompt) differently from "
            f"the start of the full conversation, from character {at}: prompt has "
            f"{prompt_text[at:at + 40]!r}, conversation has {full[at:at + 40]!r}; there is no "
            "exact prompt/response boundary. Fix the template so that the prompt rendering with "
            "add_generation_prompt=True is a prefix of the conversation",
            reason="template_not_prefix")
    return prompt_text, full[len(prompt_text):], False


def render_response(prompt: Text, response: Text, tokenizer, system: str | None = None) -> str:
    """The text the model must write after `render_prompt` (with EOS for plain text)."""
    _, text, append_eos = split_render(prompt, response, tokenizer, system)
    return text + tokenizer.eos_token if append_eos else text
