"""Each scorer against a value computed another way, and the scorer spec grammar."""

import textwrap

import pytest
import torch

from prefalign.scoring import WeightedSum, build_scorer, parse_scorer_spec
from prefalign.scoring.judge import PairwiseJudge, PointwiseJudge, parse_rating
from prefalign.scoring.verifier import UnitTestVerifier
from prefalign.generation.types import PromptItem
from synth_helpers import ScriptedJudge


def values(rows):
    return [[s.value for s in row] for row in rows]


ITEM = PromptItem(0, "What is 2+3?", meta={"answer": 5})


def test_function_verifier_scores_and_reasons():
    scorer = build_scorer("verifier:prefalign.synth.checks:exact_answer")
    [row] = scorer.score([(ITEM, ["It is 5", "It is 6", "no idea"])])
    assert [s.value for s in row] == [1.0, 0.0, 0.0]
    assert row[0].reason is None
    assert row[1].reason == "answered 6, expected 5" and row[2].reason == "no number in the response"


def test_a_crashing_verifier_fails_the_response_with_the_exception(tmp_path, monkeypatch):
    (tmp_path / "mychecks.py").write_text("def boom(response, example):\n    raise KeyError('x')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    scorer = build_scorer("verifier:mychecks:boom")
    [[score]] = scorer.score([(ITEM, ["5"])])
    assert score.value == 0.0 and "KeyError" in score.reason and scorer.stats["exceptions"] == 1


def test_verifier_spec_errors_are_clear():
    with pytest.raises(ValueError, match="cannot import"):
        build_scorer("verifier:no_such_module_xyz:f")
    with pytest.raises(ValueError, match="MODULE:FUNCTION"):
        build_scorer("verifier:justamodule")


def test_unit_tests_pass_fail_and_time_out_in_a_subprocess():
    item = PromptItem(0, "write add", meta={"tests": "assert add(2, 3) == 5"})
    scorer = UnitTestVerifier("tests", timeout=2.0)
    good = "Here:\n```python\ndef add(a, b):\n    return a + b\n```"
    wrong = "def add(a, b):\n    return a - b"
    loop = "def add(a, b):\n    while True:\n        pass\nadd(1, 2)"
    net = textwrap.dedent("""\
        import socket
        def add(a, b):
            socket.create_connection(("127.0.0.1", 9))
            return a + b""")
    [row] = scorer.score([(item, [good, wrong, loop, net])])
    assert [s.value for s in row] == [1.0, 0.0, 0.0, 0.0]
    assert "AssertionError" in row[1].reason
    assert row[2].reason.startswith("timeout after 2s")
    assert "network access is disabled" in row[3].reason
    assert scorer.stats == {"passed": 1, "failed": 2, "timeouts": 1}


def test_unit_test_runs_cannot_reach_a_server_even_around_the_socket_module():
    """With a network namespace the cut is in the kernel: code that goes around Python's socket
    module (the C module ``_socket``, or a subprocess) still cannot reach a server listening on
    this machine's loopback."""
    import socketserver
    import threading

    from prefalign.scoring.verifier import network_namespaces_available

    if not network_namespaces_available():
        pytest.skip("no network namespaces here; only Python's sockets are disabled")

    class Accept(socketserver.BaseRequestHandler):
        def handle(self):
            self.request.sendall(b"reached")

    with socketserver.TCPServer(("127.0.0.1", 0), Accept) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        port = server.server_address[1]
        item = PromptItem(0, "write add", meta={"tests": "assert add(2, 3) == 5"})
        around = textwrap.dedent(f"""\
            import _socket
            s = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
            s.settimeout(3)
            s.connect(("127.0.0.1", {port}))
            assert s.recv(7) == b"reached"
            def add(a, b):
                return a + b""")
        shell = textwrap.dedent(f"""\
            import subprocess, sys
            subprocess.run([sys.executable, "-S", "-c", "import _socket; "
                            "s = _socket.socket(); s.settimeout(3); "
                            "s.connect(('127.0.0.1', {port}))"], check=True)
            def add(a, b):
                return a + b""")
        scorer = UnitTestVerifier("tests", timeout=10.0)
        [row] = scorer.score([(item, [around, shell])])
        server.shutdown()
    assert [s.value for s in row] == [0.0, 0.0], [s.reason for s in row]
    assert "unreachable" in row[0].reason.lower(), row[0].reason
    assert "CalledProcessError" in row[1].reason, row[1].reason
    assert scorer.describe()["network"] == "namespace"


def test_unit_tests_need_the_tests_column():
    with pytest.raises(ValueError, match="needs a 'tests' column"):
        UnitTestVerifier().score([(ITEM, ["x"])])


def test_weighted_sum_and_spec_grammar():
    terms = parse_scorer_spec("0.7*verifier:a.b:f+0.3*rm:/m/x+y?label=1+implicit:P,R?beta=0.5")
    assert terms == [(0.7, "verifier", "a.b:f", {}), (0.3, "rm", "/m/x+y", {"label": 1}),
                     (1.0, "implicit", "P,R", {"beta": 0.5})]
    scorer = build_scorer("0.7*verifier:prefalign.synth.checks:exact_answer"
                          "+0.3*verifier:prefalign.synth.checks:answer_closeness")
    assert isinstance(scorer, WeightedSum)
    [row] = scorer.score([(ITEM, ["5", "7"])])
    assert [s.value for s in row] == [pytest.approx(1.0), pytest.approx(0.3 / 3)]
    assert row[1].reason == "verifier: answered 7, expected 5"
    with pytest.raises(ValueError, match="unknown scorer kind 'magic'"):
        parse_scorer_spec("magic:xyz")
    with pytest.raises(ValueError, match="cannot read the term"):
        parse_scorer_spec("not a spec")


def test_pointwise_judge_parses_ratings_and_counts_failures_without_guessing():
    def answer(q):
        resp = q.split("[Response]\n")[1].split("\n\n")[0]
        return {"good": "Solid.\nRating: 9", "ok": "Rating: [[6]]", "bad": "I refuse.",
                "weird": "Rating: 42"}[resp]
    judge = PointwiseJudge(ScriptedJudge(answer))
    [row] = judge.score([(ITEM, ["good", "ok", "bad", "weird"])])
    assert [s.value for s in row] == [9.0, 6.0, None, None]
    assert row[2].reason.startswith("judge_unparsed")
    assert judge.stats == {"parsed": 2, "unparsed": 2}
    assert parse_rating("Rating: 3\nupdated Rating: 7") == 7.0


def test_pairwise_judge_asks_both_orders_and_scores_win_rates():
    strength = {"strong": 2, "mid": 1, "weak": 0, "twin": 1}

    def answer(q):
        a = q.split("[Response A]\n")[1].split("\n\n")[0]
        b = q.split("[Response B]\n")[1].split("\n\n")[0]
        if {a, b} == {"weak", "twin"} and a == "twin":
            return "hmm"  # one unparsable order
        if strength[a] == strength[b]:
            return "Verdict: tie"
        return "Verdict: A" if strength[a] > strength[b] else "Verdict: B"

    gen = ScriptedJudge(answer)
    judge = PairwiseJudge(gen)
    [row] = judge.score([(ITEM, ["strong", "mid", "weak", "twin"])])
    assert len(gen.questions) == 12  # 6 pairs x 2 orders
    # strong wins all 6; mid: 2 losses, 2 wins, 2 ties = 3/6; weak: 0/5 (one unparsed);
    # twin: 2 losses, 2 ties, 1 win = 2/5
    assert [s.value for s in row] == [1.0, 0.5, 0.0, pytest.approx(2 / 5)]
    assert judge.stats == {"decided": 9, "ties": 2, "unparsed": 1}


def test_position_bias_cancels_in_the_pairwise_judge():
    judge = PairwiseJudge(ScriptedJudge(lambda q: "Verdict: A"))  # always prefers position A
    [row] = judge.score([(ITEM, ["x", "y", "z"])])
    assert [s.value for s in row] == [0.5, 0.5, 0.5]


@pytest.fixture(scope="module")
def two_models(tiny_model_dir):
    return str(tiny_model_dir("llama")), str(tiny_model_dir("llama", seed=1))


def plain_logp(path, item, response):
    """log p(response | prompt) with one ordinary forward (the obviously-correct path)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from prefalign.data import SFTRecord, tokenize_record
    from prefalign.engine.forward import plain_sequence_logps

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    ex, _ = tokenize_record(SFTRecord(item.prompt, response), tok)
    with torch.no_grad():
        return plain_sequence_logps(model, [ex])[0, 0].item()


def test_density_ratio_and_implicit_reward_match_plain_log_probs(two_models):
    strong, weak = two_models
    responses = ["5", "five, I think"]
    cdr = build_scorer(f"cdr:{strong},{weak}")
    implicit = build_scorer(f"implicit:{strong},{weak}?beta=0.5")
    same = build_scorer(f"implicit:{strong},{strong}")
    expected = [plain_logp(strong, ITEM, r) - plain_logp(weak, ITEM, r) for r in responses]
    assert values(cdr.score([(ITEM, responses)]))[0] == pytest.approx(expected, abs=1e-3)
    assert values(implicit.score([(ITEM, responses)]))[0] == pytest.approx(
        [0.5 * e for e in expected], abs=1e-3)
    assert values(same.score([(ITEM, responses)]))[0] == pytest.approx([0.0, 0.0], abs=1e-5)


def test_follow_up_likelihood_is_positive_minus_negative_follow_up_logp(two_models):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from prefalign.scoring.likelihood import FollowUpLikelihood

    path = two_models[0]
    scorer = FollowUpLikelihood(path, positive=["Thanks!"], negative=["Wrong."])
    item = PromptItem(0, [{"role": "user", "content": "2+3?"}])
    [[score]] = scorer.score([(item, ["5"])])
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    convo = [{"role": "user", "content": "2+3?"}, {"role": "assistant", "content": "5"}]
    ctx = tok.apply_chat_template(convo, tokenize=False)

    def logp(follow):
        full = tok.apply_chat_template(convo + [{"role": "user", "content": follow}], tokenize=False)
        ids = tok(full, add_special_tokens=True)["input_ids"]
        n_ctx = len(tok(ctx, add_special_tokens=True)["input_ids"])
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0].log_softmax(-1)
        return sum(logits[i - 1, ids[i]].item() for i in range(n_ctx, len(ids)))

    assert score.value == pytest.approx(logp("Thanks!") - logp("Wrong."), abs=1e-3)


def test_reward_model_scores_match_one_by_one_forward(tmp_path, tiny_model_dir):
    from transformers import AutoConfig, AutoTokenizer, LlamaForSequenceClassification

    base = tiny_model_dir("llama")
    config = AutoConfig.from_pretrained(base)
    config.num_labels = 1
    tok = AutoTokenizer.from_pretrained(base)
    config.pad_token_id = tok.pad_token_id
    torch.manual_seed(0)
    rm = LlamaForSequenceClassification(config).eval()
    rm.save_pretrained(tmp_path / "rm")
    tok.save_pretrained(tmp_path / "rm")
    scorer = build_scorer(f"rm:{tmp_path / 'rm'}?batch_size=3")
    item = PromptItem(0, [{"role": "user", "content": "Say hi"}])
    responses = ["hi", "hello there, friend", "yo", "greetings!"]
    [row] = scorer.score([(item, responses)])
    for response, score in zip(responses, row):
        text = tok.apply_chat_template(item.messages() + [{"role": "assistant", "content": response}],
                                       tokenize=False)
        ids = tok(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            assert score.value == pytest.approx(rm(input_ids=ids).logits[0, 0].item(), abs=1e-4)
    assert len({round(s.value, 6) for s in row}) == 4
