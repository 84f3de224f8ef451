"""Escaping for the reports (``report.md``, ``report.html``): text that comes from outside
(model responses and prompts, paths, config values, metric names) shows as written.

In Markdown, `md_text` turns ``& < >`` into entities (so no HTML the text holds renders, as it
would in most Markdown viewers), backslash-escapes the characters that would format it (emphasis,
code, links and images, strike-through) and the table separator ``|``, and writes line breaks as
``<br>`` so that a table row stays one line. `html_text` is the same for HTML.
"""

from __future__ import annotations

import html
import re

_MARKUP = re.compile(r"([\\`*_\[\]|~#])")
_NEWLINES = re.compile(r"\r\n|\r|\n")


def md_text(value) -> str:
    """``value`` as literal Markdown inline text (also safe in a table cell)."""
    text = html.escape(str(value), quote=False)
    return _NEWLINES.sub("<br>", _MARKUP.sub(r"\\\1", text))


def md_code(value) -> str:
    """``value`` in a monospace span that still shows it literally (``<code>`` with escaped
    text: a Markdown code span could be closed by a backtick in the text)."""
    return f"<code>{md_text(value)}</code>"


def md_row(cells) -> str:
    """One Markdown table row of already escaped cells."""
    return "| " + " | ".join(cells) + " |"


def html_text(value) -> str:
    return _NEWLINES.sub("<br>", html.escape(str(value), quote=True))
