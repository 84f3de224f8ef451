"""The embedded demo: a tiny model built from scratch improves at 2-digit addition from
preferences it synthesized itself (SFT -> synth with a verifier -> DPO-family training -> eval
-> report), on a laptop CPU. ``prefalign demo`` runs it; see docs/demo.md.

The task itself (prompts, the noisy teacher, the verifier) is `prefalign.tasks.addition`.
"""

from .pipeline import FULL, QUICK, DemoConfig, DemoResult, DemoSizes, run_demo

__all__ = ["run_demo", "DemoConfig", "DemoResult", "DemoSizes", "FULL", "QUICK"]
