"""Shared fixtures: tiny offline models, built once per test session."""

import os

import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """Build (once) and return the folder of a tiny model: ``tiny_model_dir(family, tokenizer)``."""
    from prefalign.demo.tiny_models import build_tiny_model

    root = tmp_path_factory.mktemp("tiny_models")
    built = {}

    def get(family="llama", tokenizer="char", **kwargs):
        key = (family, tokenizer, tuple(sorted(kwargs.items())))
        if key not in built:
            name = "-".join([family, tokenizer] + [f"{k}{v}" for k, v in sorted(kwargs.items())])
            built[key] = build_tiny_model(root / name, family=family, tokenizer=tokenizer, **kwargs)
        return built[key]

    return get
