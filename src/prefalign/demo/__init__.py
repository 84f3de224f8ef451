"""The embedded demo (`prefalign demo`, docs/demo.md): a tiny model built from scratch improves
at 2-digit addition from preferences it synthesized itself. Everything it is lives here:

* addition.py: the task (prompts, teacher, the one verifier);
* tiny_models.py: the tiny models and tokenizers built offline (also `prefalign tiny-model`, and
  the fixtures of the tests);
* stages.py: DemoConfig, its sizes and what its stages share; run.py: `run_demo` (SFT ->
  iterate -> eval -> report); compare.py: ``--compare`` (objectives side by side);
  report.py: its report.

It sits on the loop (`prefalign.loop`); only the CLI imports it.
"""

from .run import run_demo
from .config import FULL, QUICK, DemoConfig, DemoSizes
from .stages import DemoResult

__all__ = ["run_demo", "DemoConfig", "DemoResult", "DemoSizes", "FULL", "QUICK"]
