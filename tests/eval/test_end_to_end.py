"""A real (tiny) training run, evaluated and reported: the pieces fit the trainer's files."""

import json

from prefalign.eval import build_report, evaluate_policy


def test_train_then_eval_then_report(tiny_model_dir, tmp_path):
    from prefalign.train import TrainConfig, train

    rows = [{"prompt": f"{i}+{i}=", "chosen": str(2 * i), "rejected": str(2 * i + 1)}
            for i in range(8)]
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    base = tiny_model_dir("llama")
    run = tmp_path / "run"
    train(TrainConfig(model=str(base), data=str(data), eval_data=str(data), eval_steps=2,
                      output=str(run), cache_dir=str(tmp_path / "cache"), batch_size=4,
                      max_steps=2, lr=1e-3, progress=False, seed=0))
    evaluate_policy(run / "model", data, ref_path=base, prompts=["1+1="], num_samples=2,
                    max_new_tokens=4, output=run / "eval")
    summary = build_report(run)
    last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert summary["final"] == last
    assert summary["eval"]["rewards/margin"] == json.loads(
        (run / "eval" / "eval.json").read_text())["metrics"]["rewards/margin"]
    files = {p["file"] for p in summary["plots"]}
    assert {"loss.png", "logps.png", "rewards.png", "accuracy.png", "lengths.png"} <= files
    assert all((run / "report" / f).stat().st_size > 0 for f in files)
