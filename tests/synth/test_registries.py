"""The scorer, pair-strategy, pair-filter and back-end registries: built-ins declared once in
their modules, names and options checked with the closest suggestion, the docs tables generated
from them, and a project's own scorer, strategy, filter and back end added from its module with
`prefalign --plugin` and used through the CLI (its objective: tests/train/test_plugin_objective.py)."""

import importlib.util
import json
from pathlib import Path

import pytest

from prefalign.cli import main
from prefalign.scoring import build_scorer, parse_scorer_spec, registry, scorer_kind
from prefalign.generation import registry as generation_registry
from prefalign.synth import filters, pair_strategies, strategies

ROOT = Path(__file__).resolve().parents[2]

PLUGIN = '''
from prefalign.scoring import Score, Scorer, scorer_kind
from prefalign.generation import generation_backend
from prefalign.generation.types import Completion
from prefalign.synth import pair_strategy
from prefalign.synth.pairs import make_pair
from prefalign.synth.filters import Option, pair_filter


class CharCount(Scorer):
    name = "char_count"

    def __init__(self, scale=1.0):
        super().__init__()
        self.scale = float(scale)

    def score(self, groups):
        return [[Score(self.scale * len(r)) for r in responses] for _, responses in groups]

    def describe(self):
        return {"scorer": self.name, "scale": self.scale}


@scorer_kind("char_count", args="(none)", summary="characters in the response, times scale",
             options={"scale": "multiplier (1.0)"})
def build(args, options, device):
    return CharCount(**options)


class Canned:
    """Served answers: prompt i's sample j is "x" * (i + j + 1) (no model needed)."""
    name = "canned"

    def __init__(self, model):
        self.model = model

    def generate(self, prompts, n, sampling, seed=0):
        return [[Completion("x" * (p.index + j + 1), seed) for j in range(n)] for p in prompts]

    def describe(self):
        return {"backend": self.name, "model": self.model}


@generation_backend("canned", summary="canned answers (a test)", served=True,
                    new_policy_each_round=False)
def build_canned(model, base_url, options):
    return Canned(model)


@pair_strategy("best-vs-all", output="pairwise", summary="best vs every worse response")
def best_vs_all(item, kept, opts, dropped):
    best = max(range(len(kept)), key=lambda i: kept[i][2])
    pairs = (make_pair(item, kept[best], kept[i], opts, dropped)
             for i in range(len(kept)) if i != best)
    return [p for p in pairs if p is not None]


@pair_filter("short-chosen", summary="pairs whose chosen is longer than N characters",
             options=[Option("n", int, 10, "characters at most", rule=(lambda v: v >= 1, ">= 1"))])
def short_chosen(records, options, dropped):
    kept = [r for r in records if len(r.chosen) <= options["n"]]
    dropped["long_chosen"] += len(records) - len(kept)
    return kept
'''


def _forget_registrations(monkeypatch):
    """The plugin's entries are gone after the test (the docs tables list the registries)."""
    for reg in (registry._REGISTRY, strategies._REGISTRY, filters._REGISTRY,
                generation_registry._REGISTRY):
        reg.all()
        monkeypatch.setattr(reg, "entries", dict(reg.entries))
        monkeypatch.setattr(reg, "_modules", dict(reg._modules))


def test_the_built_in_kinds_are_registered_in_their_modules():
    kinds = registry.kinds()
    assert list(kinds)[:8] == ["verifier", "tests", "rm", "judge", "pairjudge", "flr", "cdr",
                               "implicit"]
    assert kinds["rm"].module == "prefalign.scoring.reward_model"
    assert set(kinds["tests"].options) >= {"timeout", "workers", "isolation"}


def test_a_kind_registered_twice_or_badly_named_is_refused():
    with pytest.raises(ValueError, match="'verifier' is registered twice"):
        scorer_kind("verifier", args="x", summary="y")(lambda a, o, d: None)
    with pytest.raises(ValueError, match="lower-case letters"):
        scorer_kind("Bad-Name", args="x", summary="y")


def test_unknown_kinds_and_options_name_the_closest_before_loading_anything():
    with pytest.raises(ValueError, match=r"unknown scorer kind 'verifer' \(did you mean "
                                         r"verifier\?\)"):
        parse_scorer_spec("verifer:a.b:c")
    with pytest.raises(ValueError, match=r"scorer rm: unknown option\(s\) lable \(did you mean "
                                         r"label\?\); it takes: batch_size, label, max_length"):
        build_scorer("rm:/no/such/model?lable=1")  # refused before the model would load


def test_the_docs_table_is_current():
    spec = importlib.util.spec_from_file_location("registry_docs",
                                                  ROOT / "scripts" / "registry_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    page = (ROOT / "docs" / "synth.md").read_text(encoding="utf-8")
    assert module.render(page) == page, "run python scripts/registry_docs.py"
    for name in registry.kinds():
        assert f"| `{name}` |" in page


def test_a_plugin_kind_is_used_through_the_cli(tiny_model_dir, tmp_path, monkeypatch):
    module = f"plugin_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    _forget_registrations(monkeypatch)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"{i}+{i}="}) + "\n" for i in range(3)))
    out = tmp_path / "pairs.jsonl"
    rc = main(["--plugin", module, "synth", "--model", str(tiny_model_dir("llama")),
               "--prompts", str(prompts), "--output", str(out), "--scorer",
               "0.5*char_count:?scale=2", "--pairs", "best-vs-all", "--n", "3",
               "--max-new-tokens", "6",
               "--temperature", "1.0", "--device", "cpu", "--no-progress"])
    assert rc == 0
    manifest = json.loads((tmp_path / "pairs.manifest.json").read_text())
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows, "pairs were built from the plugin's scores"
    for row in rows:
        assert row["score_chosen"] == len(row["chosen"]) and row["score_rejected"] == len(
            row["rejected"])
        assert row["score_chosen"] > row["score_rejected"]
    per_prompt = {}
    for row in rows:
        per_prompt.setdefault(row["prompt_index"], []).append(row)
    assert max(len(v) for v in per_prompt.values()) == 2, "best vs each of the other two"
    assert manifest["scorer"] == "0.5*char_count:?scale=2" and manifest["kind"] == "pairwise"


def test_a_plugin_that_cannot_be_imported_is_one_line(capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("PREFALIGN_DEBUG", raising=False)
    assert main(["--plugin", "no_such_plugin_module", "objectives"]) == 2
    assert "--plugin no_such_plugin_module: cannot import it" in capsys.readouterr().err
    broken = f"broken_plugin_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{broken}.py").write_text("x = 1\ndef f(:\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["--plugin", broken, "objectives"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"prefalign objectives: error: --plugin {broken}: importing it "
                             "failed, line 2: SyntaxError") and "Traceback" not in err[0]


def test_the_built_in_pair_strategies_and_their_errors():
    from prefalign.synth.pairs import PairOptions

    assert list(pair_strategies())[:7] == ["west-of-n", "best-vs-random", "best-vs-second",
                                         "sweet-spot", "all-pairs", "ranked", "unpaired"]
    with pytest.raises(ValueError, match=r"unknown pair strategy 'west-of-m' \(did you mean "
                                         r"west-of-n\?\)"):
        PairOptions(strategy="west-of-m")
    with pytest.raises(ValueError, match="'ranked' is registered twice"):
        strategies.pair_strategy("ranked", output="ranked", summary="x")(lambda *a: [])
    with pytest.raises(ValueError, match="output must be one of"):
        strategies.pair_strategy("odd", output="triples", summary="x")


def test_a_plugin_back_end_is_used_by_synth_and_refused_by_iterate_for_its_capability(
        tmp_path, monkeypatch, capsys):
    """No code outside generation/ names a back end: synth samples from the plugin's, and
    iterate refuses it because it cannot load each round's policy (it says so)."""
    monkeypatch.delenv("PREFALIGN_DEBUG", raising=False)
    module = f"backend_plugin_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    _forget_registrations(monkeypatch)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"q{i}"}) + "\n" for i in range(3)))
    out = tmp_path / "pairs.jsonl"
    assert main(["--plugin", module, "synth", "--backend", "canned", "--base-url", "none",
                 "--model", "served-name", "--prompts", str(prompts), "--output", str(out),
                 "--scorer", "char_count:", "--n", "3", "--no-progress"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["chosen"], r["rejected"]) for r in rows] == [
        ("x" * (i + 3), "x" * (i + 1)) for i in range(3)]  # west-of-n over the canned answers
    assert main(["--plugin", module, "iterate", "--backend", "canned", "--model", "m",
                 "--prompts", str(prompts), "--scorer", "char_count:",
                 "--output", str(tmp_path / "it")]) == 2
    err = capsys.readouterr().err
    assert "iterate --backend canned: each round samples from the policy" in err
    assert "--backend hf or vllm" in err and not (tmp_path / "it").exists()
    with pytest.raises(ValueError, match=r"unknown back end 'hff' \(did you mean hf\?\)"):
        generation_registry.get("hff")


def test_a_plugin_filter_is_applied_through_the_cli_and_counted(tmp_path, monkeypatch, capsys):
    module = f"filter_plugin_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    _forget_registrations(monkeypatch)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"q{i}"}) + "\n" for i in range(3)))
    out = tmp_path / "pairs.jsonl"
    common = ["--plugin", module, "synth", "--backend", "canned", "--base-url", "none",
              "--model", "m", "--prompts", str(prompts), "--output", str(out),
              "--scorer", "char_count:", "--n", "3", "--no-progress"]
    # chosen lengths are 3, 4, 5: short-chosen:4 keeps two pairs, near-dup then keeps both
    assert main(common + ["--filter", "short-chosen:4", "--filter", "near-dup"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["chosen"] for r in rows] == ["xxx", "xxxx"]
    manifest = json.loads((tmp_path / "pairs.manifest.json").read_text())
    assert manifest["filters"] == [
        {"filter": "short-chosen", "options": {"n": 4}},
        {"filter": "near-dup", "options": {"threshold": 0.9, "n": 3, "prompts": "all"}}]
    counts = manifest["counts"]
    assert counts["records_before_filters"] == 3 and counts["records"] == 2
    assert counts["filters"][0] == {"filter": "short-chosen", "options": {"n": 4},
                                    "records_in": 3, "kept": 2, "dropped": {"long_chosen": 1}}
    # an unknown option is one line naming the closest, before any work
    assert main(common + ["--filter", "short-chosen:nn=2"]) == 2
    assert "filter short-chosen: unknown option(s) nn (did you mean n?)" in capsys.readouterr().err
