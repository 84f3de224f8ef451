"""An objective from a project's own module (docs/extending.md): registered with @objective,
loaded by `prefalign --plugin MODULE`, trained through the CLI like a built-in one."""

import json
import math

from prefalign.cli import main
from prefalign.objectives import registry

PLUGIN = '''
import torch.nn.functional as F

from prefalign.objectives import params
from prefalign.objectives.registry import objective


@objective(name="twice_dpo", shape="pairwise", needs_reference=True,
           paper="(a test) DPO, doubled", formula="2 * -log σ(β(ρ_w − ρ_l))",
           summary="DPO's loss times two", hyperparameters=(params.beta(),))
def twice_dpo(b, *, beta):
    rho_w, rho_l = b.logratios()
    return b.output(-2.0 * F.logsigmoid(beta * (rho_w - rho_l)), beta)
'''


def test_a_plugin_objective_trains_through_the_cli(tiny_model_dir, pair_file, tmp_path,
                                                    monkeypatch):
    module = f"objective_plugin_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    # forget it afterwards (the objectives page lists the registry)
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "_ALIASES", dict(registry._ALIASES))
    out = tmp_path / "run"
    assert main(["--plugin", module, "train", "--model", str(tiny_model_dir("llama")),
                 "--data", str(pair_file), "--objective", "twice_dpo", "--beta", "0.2",
                 "--output", str(out), "--max-steps", "1", "--batch-size", "2", "--no-progress",
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    first = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert abs(first["loss"] - 2 * math.log(2)) < 1e-6  # the policy is its own reference
    assert json.loads((out / "config.json").read_text())["objective"] == "twice_dpo"
