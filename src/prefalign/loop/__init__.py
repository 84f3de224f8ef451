"""The loop: what composes the rooms below it (synth, train, eval) into runs.

* `run_iterate` (iterate.py): K rounds of synth -> train -> eval, each sampling from the newest
  policy (`prefalign iterate`);
* `run_demo` (demo.py): the embedded demo, a tiny model built from scratch improving at 2-digit
  addition from preferences it synthesized itself (`prefalign demo`, docs/demo.md); its stages'
  shared parts are in demo_stages.py, its objective comparison in compare.py, its report in
  demo_report.py. The task (prompts, teacher, the one verifier) is `prefalign.tasks.addition`.

Nothing below this layer imports it.
"""

from .demo import run_demo
from .demo_stages import FULL, QUICK, DemoConfig, DemoResult, DemoSizes
from .iterate import IterateConfig, IterateResult, run_iterate, score_heldout

__all__ = ["run_iterate", "IterateConfig", "IterateResult", "score_heldout", "run_demo",
           "DemoConfig", "DemoResult", "DemoSizes", "FULL", "QUICK"]
