"""The loop: `run_iterate` (iterate.py), K rounds of synth -> train -> eval, each sampling from
the newest policy (`prefalign iterate`); its settings in config.py. It composes the rooms below
it (synth, train, eval); only the demo and the CLI import it."""

from .config import IterateConfig
from .iterate import IterateResult, run_iterate, score_heldout

__all__ = ["run_iterate", "IterateConfig", "IterateResult", "score_heldout"]
