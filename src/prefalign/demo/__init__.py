"""The embedded demo: a tiny model built from scratch improves at 2-digit addition from
preferences it synthesized itself (SFT -> synth with a verifier -> DPO-family training -> eval
-> report), on a laptop CPU. ``prefalign demo`` runs it; see docs/demo.md.
"""

from .pipeline import FULL, QUICK, DemoConfig, DemoResult, DemoSizes, run_demo
from .task import AdditionTask, answer_of, is_correct, noisy_sum

__all__ = ["run_demo", "DemoConfig", "DemoResult", "DemoSizes", "FULL", "QUICK",
           "AdditionTask", "noisy_sum", "answer_of", "is_correct"]
