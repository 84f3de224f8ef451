"""Preference-leakage check: warn when the judge is related to the policy it judges.

"Preference Leakage: A Contamination Problem in LLM-as-a-judge" finds judges favour students
related to them in three ways: the same model, an inheritance relationship (one was trained from
the other), and the same model family. We detect what the config files can tell: the same path,
one's config ``_name_or_path`` (the model it was loaded or trained from) naming the other,
both naming the same origin, and the same ``model_type``.
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
    """{'id', 'origin', 'model_type'}: what the model is (a resolved folder or a name), the
    model it was loaded or trained from (its config's ``_name_or_path``), and its family."""
    info = {"id": None, "origin": None, "model_type": None}
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        cfg_file = path / "config.json"
        if cfg_file.is_file():
            info["id"] = str(path.resolve())
            cfg = json.loads(cfg_file.read_text())
            info["model_type"] = cfg.get("model_type")
            info["origin"] = cfg.get("_name_or_path") or None
        else:
            info["id"] = str(model)          # a hub name
        return info
    cfg = getattr(model, "config", model)
    get = cfg.get if isinstance(cfg, dict) else (lambda k: getattr(cfg, k, None))
    info["model_type"] = get("model_type")
    info["id"] = get("_name_or_path") or get("name_or_path") or None
    return info


def _same(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return False
    norm = lambda s: os.path.normpath(str(s)).lower()
    return norm(a) == norm(b)


def preference_leakage(judge: Any, policy: Any, *, warn: bool = True) -> list[str]:
    """Reasons the judge may favour the policy (empty when none is found).

    ``judge``/``policy``: model folders, hub names, config dicts, configs or models. With
    ``warn`` each reason is also issued as a `PreferenceLeakageWarning`.
    """
    j, p = _describe(judge), _describe(policy)
    reasons = []
    if _same(j["id"], p["id"]):
        reasons.append(f"same model: the judge and the policy are one model ({j['id']})")
    elif _same(p["origin"], j["id"]) or _same(j["origin"], p["id"]):
        reasons.append("inheritance: one was trained or loaded from the other "
                       f"(judge {j['id']!r}, policy {p['id']!r})")
    elif _same(j["origin"], p["origin"]):
        reasons.append(f"inheritance: both come from {j['origin']!r}")
    if j["model_type"] and j["model_type"] == p["model_type"]:
        reasons.append(f"same model family: both are {j['model_type']!r}")
    if warn:
        for r in reasons:
            warnings.warn(f"preference leakage risk: {r}; the judge may favour this policy. "
                          "Use a judge from another family.", PreferenceLeakageWarning,
                          stacklevel=2)
    return reasons
