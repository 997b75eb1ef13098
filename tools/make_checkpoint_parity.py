#!/usr/bin/env python3
"""Writes fixtures/parity_upper_middle.json: the logits of the *shipped* checkpoint
fixtures/succulm_upper_middle.json computed by the seed's PyTorch SuccuLM (the classes of
tools/make_parity_fixture.py, re-typed from the article) for a few tokenized prompts, so that
tests/parity.rs can check that our forward reproduces PyTorch on the trained weights too.

Needs torch (the tests do not). Run from the crate root, after training the checkpoint:
    python3 tools/make_checkpoint_parity.py
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
from make_parity_fixture import SuccuLM  # noqa: E402

PROMPTS = [
    "ruby is a boy succulent plant. winy is a girl succulent plant.",
    "is winy a girl?",
    "does ruby know three winters? yes, he knows the cold.",
    "why is ruby red today?",
]


def tokenize(sentence):
    # The seed's tokenize on the lower-cased text.
    import re
    sentence = sentence.lower()
    for sign in [".", ",", "?", "!"]:
        sentence = sentence.replace(sign, f" {sign} ")
    return re.split(r"\s+", sentence.strip())


def main():
    with open("fixtures/succulm_upper_middle.json") as f:
        ckpt = json.load(f)
    c = ckpt["config"]
    w2i = ckpt["vocab"]
    model = SuccuLM(
        vocab_size=c["vocab_size"], d_model=c["d_model"], max_len=c["max_len"],
        n_layers=c["n_layers"], ffn_expansion=c["ffn_expansion"], n_attn_heads=c["n_attn_heads"],
    )
    sd = {k: torch.tensor(v["data"], dtype=torch.float32).reshape(v["shape"])
          for k, v in ckpt["state_dict"].items()}
    print(model.load_state_dict(sd, strict=True))
    model.eval()
    rows = []
    for p in PROMPTS:
        ids = [w2i["<BOS>"]] + [w2i.get(t, w2i["<UNK>"]) for t in tokenize(p)]
        with torch.no_grad():
            logits = model(torch.tensor([ids]))[0]
        rows.append({"prompt": p, "ids": ids, "logits": logits.reshape(-1).tolist()})
    tmp = "fixtures/.parity_upper_middle.json.tmp"
    with open(tmp, "w") as f:
        json.dump({"checkpoint": "succulm_upper_middle.json", "rows": rows}, f)
    os.replace(tmp, "fixtures/parity_upper_middle.json")
    print("wrote fixtures/parity_upper_middle.json")


if __name__ == "__main__":
    main()
