"""FlexAttention's layout: one row per micro-batch, its width on a fixed ladder, so that an
epoch compiles for a handful of shapes, with log-probs and gradients unchanged (the padding is
masked out). The compiled kernel itself runs on CUDA only (tests/engine/test_flex_attention.py);
here the same layout runs through SDPA."""

import random

import pytest

from prefalign.engine.forward import PackedLogProbModel
from prefalign.engine.layout import bucket_width, pack

from test_packed_forward import assert_packed_equals_plain, load, random_examples


def test_the_ladder_is_the_smallest_width_that_fits_with_little_padding():
    ladder = sorted({bucket_width(n) for n in range(1, 70_000)})
    assert ladder[:10] == [128, 256, 384, 512, 640, 768, 896, 1024, 1280, 1536]
    assert len(ladder) <= 4 * 9 + 4  # 128 .. 70k: about four steps per doubling
    for n in (1, 127, 128, 129, 1000, 1025, 4097, 50_001):
        w = bucket_width(n)
        assert w >= n and bucket_width(w) == w
        assert all(rung < n for rung in ladder if rung < w), "the smallest rung that fits"
        assert w - n < max(128, w / 4), "padding under a quarter of the width"
    with pytest.raises(ValueError):
        bucket_width(0)


def test_an_epoch_of_random_batches_sees_few_shapes():
    """200 micro-batches of 8 pairs with chat-like lengths: the bucketed layout has one row and at
    most 8 widths; the default layout about one shape per batch."""
    rnd = random.Random(0)

    class Ex:
        def __init__(self):
            self.prompt_ids = [5] * rnd.randint(200, 600)
            self.responses = [[6] * rnd.randint(200, 500), [7] * rnd.randint(200, 500)]

    bucketed, default = set(), set()
    for _ in range(200):
        batch = [Ex() for _ in range(8)]
        bucketed.add(tuple(pack(batch, bucketed=True).input_ids.shape))
        default.add(tuple(pack(batch).input_ids.shape))
    assert {rows for rows, _ in bucketed} == {1}
    assert len(bucketed) <= 8
    assert len(default) > 5 * len(bucketed)


@pytest.mark.parametrize("family", ["llama", "mistral"])
def test_bucketed_layout_gives_the_plain_log_probs_and_gradients(tiny_model_dir, family):
    """mistral's tiny model has sliding windows shorter than its sequences: windows are counted in
    each example's own positions, not the row's, so one long row changes nothing."""
    model = load(tiny_model_dir(family), "sdpa")
    examples = random_examples(seed=3)
    batch = pack(examples, bucketed=True)
    assert batch.input_ids.shape == (1, bucket_width(sum(
        len(e.prompt_ids) + sum(map(len, e.responses)) for e in examples)))
    assert_packed_equals_plain(model, examples, batch)


def test_the_engine_packs_for_its_kernel(tiny_model_dir):
    examples = random_examples(seed=4)
    sdpa = PackedLogProbModel(load(tiny_model_dir("llama"), "sdpa"))
    assert sdpa.pack(examples, row_capacity=40).input_ids.shape[0] > 1
    flex = PackedLogProbModel(load(tiny_model_dir("llama"), "sdpa"))
    flex.model.config._attn_implementation = "flex_attention"  # the layout only; nothing runs
    assert flex.pack(examples, row_capacity=40).input_ids.shape[0] == 1
