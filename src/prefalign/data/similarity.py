"""How alike two texts are, for duplicate and near-duplicate checks (synth's ``near-dup``
filter, ``prefalign data audit``): texts normalised (Unicode NFKC, case folded, every run of
characters that are not letters or digits one space; a message list is its contents joined),
then compared by the Jaccard index |A ∩ B| / |A ∪ B| of their character n-gram sets (a text
shorter than n is one gram)."""

from __future__ import annotations

import re
import unicodedata

_NOT_WORD = re.compile(r"[\W_]+", re.UNICODE)


def normalise(text) -> str:
    if isinstance(text, list):  # messages
        text = " ".join(str(m.get("content", "")) for m in text if isinstance(m, dict))
    text = unicodedata.normalize("NFKC", str(text)).casefold()
    return _NOT_WORD.sub(" ", text).strip()


def ngrams(text: str, n: int) -> set[str]:
    if len(text) <= n:
        return {text}
    return {text[i:i + n] for i in range(len(text) - n + 1)}


def jaccard(a: str, b: str, n: int = 3) -> float:
    """The Jaccard index of the character n-gram sets of two normalised texts."""
    x, y = ngrams(a, n), ngrams(b, n)
    return len(x & y) / len(x | y) if x | y else 1.0


def record_key(record) -> tuple:
    """A record's identity after normalisation: its kind, prompt, responses in order, label."""
    return (record.kind, normalise(record.prompt), tuple(normalise(r) for r in record.responses),
            getattr(record, "label", None))
