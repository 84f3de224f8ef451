"""A small end-to-end example: build a tiny model offline, lay out preference pairs the fast
way, and check the packed, prefix-shared log-probs against the plain forward.

    python examples/quickstart.py
"""

import tempfile

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from prefalign import objectives
from prefalign.engine.forward import PackedLogProbModel, plain_sequence_logps
from prefalign.engine.layout import pack
from prefalign.demo.tiny_models import build_tiny_model


class Pair:
    def __init__(self, prompt_ids, chosen, rejected):
        self.prompt_ids, self.responses = prompt_ids, [chosen, rejected]


def main():
    path = build_tiny_model(tempfile.mkdtemp(), family="llama")
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, attn_implementation="sdpa")
    raw = [("12+35=", "47", "57"), ("7+8=", "15", "14"), ("40+2=", "42", "24")]
    pairs = [Pair(tok(p).input_ids, tok(c, add_special_tokens=False).input_ids + [tok.eos_token_id],
                  tok(r, add_special_tokens=False).input_ids + [tok.eos_token_id]) for p, c, r in raw]
    batch = pack(pairs)
    fast = PackedLogProbModel(model)(batch)
    plain = plain_sequence_logps(model, pairs)
    print(f"{len(pairs)} pairs packed into {batch.input_ids.shape[0]} row(s) of {batch.input_ids.shape[1]} tokens")
    print("packed log-probs [chosen, rejected]:\n", fast.logps.detach())
    print("max difference to the plain forward:", float((fast.logps - plain).abs().max().detach()))
    loss = objectives.compute("sigmoid", fast.logps[:, 0], fast.logps[:, 1],
                              fast.logps[:, 0].detach(), fast.logps[:, 1].detach(), beta=0.1)
    print("DPO loss against itself as reference (ln 2 = 0.6931):", loss.mean().item())


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
