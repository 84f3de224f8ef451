"""Preference-leakage check: warn when the judge is related to the policy it judges.

"Preference Leakage: A Contamination Problem in LLM-as-a-judge" finds judges favour students
related to them in three ways: the same model, an inheritance relationship (one was trained from
the other), and the same model family. We detect what the config files can tell: the same path,
the same ``_name_or_path``, one's ``_name_or_path`` naming the other, and the same
``model_type``.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any


class PreferenceLeakageWarning(UserWarning):
    """The judge and the judged policy are the same model, related, or of one family."""


def _describe(model: Any) -> dict:
    """{'path', 'name', 'model_type'} of a path, a config dict, a config or a model."""
    info = {"path": None, "name": None, "model_type": None}
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        info["path"] = str(path.resolve()) if path.exists() else str(model)
        info["name"] = str(model)
        cfg_file = path / "config.json"
        if cfg_file.is_file():
            cfg = json.loads(cfg_file.read_text())
            info["model_type"] = cfg.get("model_type")
            info["name"] = cfg.get("_name_or_path") or info["name"]
        return info
    cfg = getattr(model, "config", model)
    get = cfg.get if isinstance(cfg, dict) else (lambda k: getattr(cfg, k, None))
    info["model_type"] = get("model_type")
    info["name"] = get("_name_or_path") or get("name_or_path")
    return info


def _same(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return False
    norm = lambda s: os.path.normpath(str(s)).rstrip("/").lower()
    return norm(a) == norm(b)


def preference_leakage(judge: Any, policy: Any, *, warn: bool = True) -> list[str]:
    """Reasons the judge may favour the policy (empty when none is found).

    ``judge``/``policy``: model folders, hub names, config dicts, configs or models. With
    ``warn`` each reason is also issued as a `PreferenceLeakageWarning`.
    """
    j, p = _describe(judge), _describe(policy)
    reasons = []
    if _same(j["path"], p["path"]) or _same(j["name"], p["name"]):
        reasons.append("same model: the judge and the policy are one model "
                       f"({j['name'] or j['path']})")
    elif (_same(p["name"], j["path"]) or _same(j["name"], p["path"])):
        reasons.append("inheritance: one model's config names the other as its origin "
                       f"(judge {j['name']!r}, policy {p['name']!r})")
    if j["model_type"] and j["model_type"] == p["model_type"]:
        reasons.append(f"same model family: both are {j['model_type']!r}")
    if warn:
        for r in reasons:
            warnings.warn(f"preference leakage risk: {r}; the judge may favour this policy. "
                          "Use a judge from another family.", PreferenceLeakageWarning,
                          stacklevel=2)
    return reasons
