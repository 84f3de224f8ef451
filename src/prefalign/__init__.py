"""prefalign: synthesize preferences, train the DPO family fast, evaluate what changed."""

__version__ = "0.1.0"
