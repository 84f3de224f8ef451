"""Scorer specs that name the models of a loop: ``@policy`` (the policy being trained: in
`prefalign iterate`, the policy the round samples from; in `prefalign synth`, ``--model``) and
``@ref`` (its reference: iterate's ``train_args.ref_model`` when set, else the loop's starting
model). Self-rewarding rounds are written with them, e.g. ``selfjudge:@policy`` or
``implicit:@policy,@ref``: each round then scores with that round's policy."""

from __future__ import annotations

import re

# a whole reference: what follows it ends an argument (a path like /m/x@ref-2 is left alone)
_REF = re.compile(r"@(policy|ref)(?=$|[,|&?+#\s])")


def names_models(spec: str) -> bool:
    return bool(_REF.search(spec or ""))


def resolve_model_refs(spec: str, *, policy: str | None, ref: str | None,
                       where: str = "--scorer") -> str:
    """``spec`` with ``@policy`` and ``@ref`` replaced by the models' paths; one naming a model
    this command does not have is one line."""
    models = {"policy": policy, "ref": ref}

    def path(match: re.Match) -> str:
        value = models[match.group(1)]
        if value is None:
            raise ValueError(f"{where} {spec!r}: @{match.group(1)} names the "
                             f"{'reference' if match.group(1) == 'ref' else 'policy'} of a "
                             "prefalign iterate loop; here give the model's path instead")
        return str(value)

    return _REF.sub(path, spec)
