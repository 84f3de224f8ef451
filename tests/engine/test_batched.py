"""One batched no-grad log-prob loop (engine/batched.py) behind the reference cache, eval and the
likelihood scorers: bit-identical to packing each group and running the model by hand."""

import torch
from torch import nn

from prefalign.engine.batched import batched_logps, batches_by_tokens
from prefalign.engine.forward import PackedLogProbModel
from prefalign.engine.layout import pack
from prefalign.engine.reference import compute_all_logps
from prefalign.eval.logps import compute_logps

from test_packed_forward import load, random_examples


def test_groups_by_tokens_and_by_count():
    examples = random_examples(seed=1, n=7)
    sizes = [len(e.prompt_ids) + sum(map(len, e.responses)) for e in examples]
    for max_tokens, max_examples in ((20, None), (None, 3), (30, 2), (None, None)):
        groups = list(batches_by_tokens(examples, max_tokens, max_examples))
        assert [i for g in groups for i in g] == list(range(7))
        for g in groups:
            assert max_examples is None or len(g) <= max_examples
            assert max_tokens is None or len(g) == 1 or sum(sizes[i] for i in g) <= max_tokens
    assert len(list(batches_by_tokens(examples, None, None))) == 1


def _by_hand(model, examples, groups, row_capacity, stats=()):
    k = max(len(e.responses) for e in examples)
    logps = torch.zeros(len(examples), k, dtype=torch.float64)
    tokens, flat = [], {s: [] for s in stats}
    with torch.no_grad():
        for g in groups:
            out = model(pack([examples[i] for i in g], row_capacity=row_capacity), stats=stats)
            logps[g, :out.logps.shape[1]] = out.logps.double()
            tokens.append(out.token_logps)
            for s in stats:
                flat[s].append(out.stats[s].double())
    return logps, torch.cat(tokens), {s: torch.cat(v) for s, v in flat.items()}


def test_reference_eval_and_scoring_paths_are_the_hand_loops(tiny_model_dir):
    lm = load(tiny_model_dir("llama")).eval()
    model = PackedLogProbModel(lm, chunk_tokens=7)
    examples = random_examples(seed=5, n=9)

    ref, ref_tokens = compute_all_logps(model, examples, pad_token_id=0, max_tokens=40,
                                        progress=False, with_tokens=True)
    logps, tokens, _ = _by_hand(model, examples, batches_by_tokens(examples, 40), None)
    assert ref.dtype == torch.float32 and torch.equal(ref, logps.float())
    assert torch.equal(ref_tokens, tokens.float())

    stats = ("topk_entropy", "topk_mass")
    ev = compute_logps(model, examples, pad_token_id=0, max_tokens=40, stats=stats)
    logps, _, flat = _by_hand(model, examples, batches_by_tokens(examples, 40), 40, stats)
    assert torch.equal(ev.logps, logps) and all(torch.equal(ev.stats[s], flat[s]) for s in stats)
    # the flat index is global: example e's response k is e * K + k
    k = ev.num_responses
    for e, ex in enumerate(examples):
        for r, resp in enumerate(ex.responses):
            assert int((ev.sequence_index == e * k + r).sum()) == len(resp) == ev.lengths[e, r]

    scored = batched_logps(model, examples, pad_token_id=0, max_tokens=None, max_examples=4)
    logps, _, _ = _by_hand(model, examples, batches_by_tokens(examples, None, 4), None)
    assert torch.equal(scored.logps, logps)


def test_modes_are_restored_module_by_module(tiny_model_dir):
    lm = load(tiny_model_dir("llama")).eval()
    model = PackedLogProbModel(lm)  # the wrapper in train mode, the model in eval mode
    batched_logps(model, random_examples(seed=2, n=3), pad_token_id=0)
    assert model.training and not any(m.training for m in lm.modules())
    lm.train()
    batched_logps(model, random_examples(seed=2, n=3), pad_token_id=0)
    assert all(m.training for m in lm.modules())


def test_no_examples_is_an_error():
    import pytest

    with pytest.raises(ValueError, match="no examples"):
        batched_logps(PackedLogProbModel(nn.Linear(1, 1)), [], pad_token_id=0)


def _gathered(model, examples, world, **options):
    """What every process of ``world`` gets from the sharded pass, run here one after another:
    each process's share captured first, then the gather handed all of them."""
    from prefalign.engine.reference import Shards, _sharded_logps

    shares = {}

    class Captured(Exception):
        pass

    for rank in range(world):
        def capture(obj, rank=rank):
            shares[rank] = obj
            raise Captured
        try:
            _sharded_logps(model, examples, Shards(rank, world, capture), **options)
        except Captured:
            pass
    return _sharded_logps(model, examples, Shards(0, world, lambda obj: [shares[r] for r in
                                                                         range(world)]),
                          **options)


def test_the_sharded_reference_pass_is_the_single_one(tiny_model_dir):
    """Lists of different lengths (each share's widest list differs) and fewer examples than
    processes (an empty share) give what one process computes."""
    model = PackedLogProbModel(load(tiny_model_dir("llama")).eval())
    options = dict(pad_token_id=0, max_tokens=40, progress=False)
    examples = random_examples(seed=3, n=5, responses=(1, 3))
    one, one_tokens = compute_all_logps(model, examples, with_tokens=True, **options)
    for world, subset in ((2, examples), (3, examples), (4, examples[:2])):
        if subset is not examples:
            one, one_tokens = compute_all_logps(model, subset, with_tokens=True, **options)
        logps, tokens = _gathered(model, subset, world, **options)
        assert logps.shape == one.shape and torch.allclose(logps, one, atol=1e-5), world
        assert torch.allclose(tokens, one_tokens, atol=1e-5), world
