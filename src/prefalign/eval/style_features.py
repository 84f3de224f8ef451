"""Response features a length-controlled win rate can also control for (``--lc-feature``).

The judged win rate's regression (`prefalign.eval.judged.length_controlled`) always controls for
the length gap in tokens; each feature named here adds the policy's minus the baseline's value
as one more term, so the reported ``lc_win_rate`` is the win rate at zero gap in all of them
(AlpacaEval 2 controls for length; style features such as markdown are the usual next suspects
of a judge's bias). Built in: ``words``, ``lines``, ``markdown`` (headers, list items, bold
spans and code fences). A name with a colon, ``MODULE:FUNCTION``, imports the user's function
(text -> number), as a verifier spec does: only code the user named runs.
"""

from __future__ import annotations

import math
import numbers
import re
from typing import Callable

_MARKDOWN = re.compile(r"^\s{0,3}(#{1,6}\s|[-*+]\s|\d+[.)]\s|```)|\*\*[^*\n]+\*\*", re.M)


def _words(text: str) -> float:
    return float(len(text.split()))


def _lines(text: str) -> float:
    return float(len(text.splitlines()))


def _markdown(text: str) -> float:
    return float(len(_MARKDOWN.findall(text)))


FEATURES: dict[str, Callable[[str], float]] = {
    "words": _words, "lines": _lines, "markdown": _markdown}


def resolve(name: str) -> Callable[[str], float]:
    """The feature ``name`` names: a built-in one or the user's ``MODULE:FUNCTION``."""
    if name in FEATURES:
        return FEATURES[name]
    if ":" in name:
        from prefalign.scoring.verifier import load_function

        try:
            return load_function(name)
        except ValueError as e:
            raise ValueError(f"--lc-feature {name!r}: {str(e).split(': ', 1)[-1]}") from None
        except Exception as e:  # the user's module failed while importing (a SyntaxError, ...)
            raise ValueError(f"--lc-feature {name!r}: importing it failed "
                             f"({type(e).__name__}: {e})") from None
    raise ValueError(f"--lc-feature {name!r}: not one of {', '.join(FEATURES)} and not "
                     "MODULE:FUNCTION (the tokens' length is always controlled for)")


def values(fn: Callable[[str], float], name: str, texts) -> list[float]:
    """``fn`` of every text, each a finite number (else one line naming the feature)."""
    out = []
    for i, text in enumerate(texts):
        try:
            value = fn(text)
        except Exception as e:  # the user's function: one line naming it, not a traceback
            raise ValueError(f"--lc-feature {name!r}: failed on response {i} "
                             f"({type(e).__name__}: {e})") from None
        if isinstance(value, bool) or not isinstance(value, numbers.Real) \
                or not math.isfinite(value):
            raise ValueError(f"--lc-feature {name!r}: response {i} gave {value!r}, not a "
                             "finite number")
        out.append(float(value))
    return out
