"""`prefalign data audit` on a file with planted defects: it must find every one, naming the
file and line, and leave the file as it was."""

import json

import pytest

from prefalign.cli import main

ROWS = [
    {"prompt": "1+1=", "chosen": "2", "rejected": "3"},                      # 1 fine
    {"prompt": "1+1=", "chosen": "2", "rejected": "3"},                      # 2 exact duplicate
    {"prompt": "1 + 1 =", "chosen": "2", "rejected": "3"},                   # 3 near duplicate
    {"prompt": "What is 7+8?", "chosen": "15", "rejected": "16"},            # 4 leaked prompt
    {"prompt": "p5", "chosen": "a b", "rejected": "a  b"},                   # 5 whitespace only
    {"prompt": "p6", "chosen": "same", "rejected": "same"},                  # 6 identical
    {"prompt": "p7", "chosen": "", "rejected": "x"},                         # 7 empty
    {"prompt": "p8", "chosen": "yq" * 30, "rejected": "z"},                  # 8 long; label noise
    {"prompt": "p9", "chosen": "the cat sat on the mat", "rejected": "The cat sat on the mat."},
]


@pytest.fixture
def planted(tmp_path):
    path = tmp_path / "f.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    held_out = tmp_path / "heldout.jsonl"
    held_out.write_text(json.dumps({"prompt": "what is 7 + 8?"}) + "\n")
    return path, held_out


def _findings(out):
    summary = json.loads((out / "audit.json").read_text())
    return summary, {f["check"]: f["rows"] for f in summary["findings"]}


def test_every_planted_defect_is_found_with_its_line(planted, tmp_path, tiny_model_dir, capsys):
    path, held_out = planted
    before = path.read_bytes()
    model = str(tiny_model_dir("llama"))
    out = tmp_path / "audit"
    assert main(["data", "audit", str(path), "--eval", str(held_out), "--model", model,
                 "--ref-model", model, "--max-length", "40", "--output", str(out),
                 "--device", "cpu"]) == 0
    assert path.read_bytes() == before, "the audit changed the file"
    summary, found = _findings(out)
    f = str(path)
    assert found["exact_duplicates"] == [f"{f}, line 2 repeats {f}, line 1"]
    assert found["near_duplicates"] == [f"{f}, line 3 ≈ {f}, line 1"]
    assert found["leaked_prompts"] == [f"{f}, line 4"]
    assert found["whitespace_only"] == [f"{f}, line 5"]
    assert len(found["refused:identical_responses"]) == 1
    assert found["refused:identical_responses"][0].startswith(f"{f}, line 6")
    assert len(found["refused:empty_field"]) == 1
    assert found["refused:empty_field"][0].startswith(f"{f}, line 7")
    assert [r.split(" (")[0] for r in found["truncated"]] == [f"{f}, line 8"]
    assert [r.split(" (")[0] for r in found["suspected_label_noise"]] == [f"{f}, line 8"]
    assert found["similar_responses"] == [f"{f}, line 9"]
    assert set(found) == {"exact_duplicates", "near_duplicates", "leaked_prompts",
                          "whitespace_only", "refused:identical_responses",
                          "refused:empty_field", "truncated", "suspected_label_noise",
                          "similar_responses"}
    stats = summary["statistics"]
    assert (stats["rows"], stats["loaded"], stats["refused"]) == (9, 7, 2)
    assert stats["kinds"] == {"pairwise": 7}
    assert stats["ches"]["n"] == 7 and stats["implicit_margin"]["n"] == 7
    assert stats["implicit_margin"]["max"] == pytest.approx(0.0, abs=1e-6)  # policy = reference
    assert {p["file"] for p in summary["plots"]} >= {"length_gap.png", "ches.png",
                                                      "reference_logratio.png"}
    for name in ("audit.md", "audit.html", "length_gap.png"):
        assert (out / name).stat().st_size > 0
    md = (out / "audit.md").read_text()
    assert "line 8" in md and "leaked_prompts" in md.replace("\\_", "_")
    assert "exact_duplicates: 1" in capsys.readouterr().out.replace("\\_", "_")


def test_length_bias_and_margins_without_a_model(tmp_path):
    rows = [{"prompt": f"q{i}", "chosen": "x" * (i + 2), "rejected": "y", "margin": float(i)}
            for i in range(4)] + [{"prompt": "q9", "chosen": "a", "rejected": "bbb",
                                   "margin": 0.5}]
    path = tmp_path / "bias.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    from prefalign.eval.audit import audit_file

    summary = audit_file(path)
    bias = summary["statistics"]["length_bias"]
    assert bias["unit"] == "characters" and bias["chosen_longer"] == pytest.approx(4 / 5)
    # gaps 1, 2, 3, 4, -2 against margins 0, 1, 2, 3, 0.5: Pearson by hand
    import statistics

    assert bias["margin_vs_gap_correlation"] == pytest.approx(
        statistics.correlation([0, 1, 2, 3, 0.5], [1, 2, 3, 4, -2]))
    assert summary["statistics"]["margins"]["max"] == 3.0
    assert summary["findings"] == []
    assert (tmp_path / "bias.audit" / "audit.md").exists()  # the default folder, beside it


def test_max_length_needs_a_model(tmp_path, capsys):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n")
    assert main(["data", "audit", str(path), "--max-length", "10"]) == 2
    assert "--max-length needs --model" in capsys.readouterr().err


def test_refused_rows_are_all_counted_past_the_loaders_message_limit(tmp_path):
    from prefalign.eval.audit import audit_file

    path = tmp_path / "many.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"p{i}", "chosen": "", "rejected": "x"}) + "\n"
                            for i in range(1005)))
    summary = audit_file(path)
    (finding,) = summary["findings"]
    assert finding["check"] == "refused:empty_field" and finding["count"] == 1005
