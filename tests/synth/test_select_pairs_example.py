"""examples/select_pairs.py runs end to end (synth with rso, rip and margin filters, audit,
train) and each step leaves what the next one reads."""

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_example_runs_end_to_end(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("select_pairs",
                                                  ROOT / "examples" / "select_pairs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(tmp_path)
    manifest = json.loads((tmp_path / "pairs.manifest.json").read_text())
    assert [f["filter"] for f in manifest["filters"]] == ["rip", "margin"]
    assert manifest["pairs"]["strategy_options"] == {"beta": 0.3, "accepted": 4,
                                                     "pairing": "best-vs-worst"}
    rows = [json.loads(line) for line in (tmp_path / "pairs.jsonl").read_text().splitlines()]
    assert rows and all("implicit_margin" in r for r in rows)
    assert manifest["counts"]["records"] == len(rows)
    assert (tmp_path / "audit" / "audit.json").exists()
    assert (tmp_path / "run" / "model" / "config.json").exists()
