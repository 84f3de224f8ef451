"""The durable append-only JSONL log now lives in :mod:`prefalign.durable_log` (one
implementation, shared by synth jobs and training); this name is kept for imports."""

from prefalign.durable_log import DurableLog

__all__ = ["DurableLog"]
