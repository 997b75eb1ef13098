#!/usr/bin/env python3
"""The seed's PyTorch SuccuLM and our safetensors checkpoints, both ways.

1. Loads the *shipped* fixtures/succulm_upper_middle.safetensors (written by our
   `Model::save`) with `safetensors.torch.load_file` into the seed's classes with
   `load_state_dict(strict=True)`, reads the config from the header metadata, and checks its
   logits against fixtures/parity_upper_middle.json (PyTorch's logits from the JSON checkpoint).
2. Writes fixtures/parity_tiny.safetensors *from PyTorch*: the model of
   fixtures/parity_tiny.json (made by tools/make_parity_fixture.py), saved with
   `safetensors.torch.save_file(model.state_dict(), ..., metadata=...)`. tests/safetensors.rs
   loads it with `Model::load` and checks our logits against the PyTorch logits in
   fixtures/parity_tiny.json.

Needs torch and safetensors (the tests do not). Run from the crate root:
    python3 tools/safetensors_torch.py
"""
import json
import os
import sys

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(__file__))
from make_parity_fixture import SuccuLM  # noqa: E402


def build(config):
    c = config
    return SuccuLM(
        vocab_size=c["vocab_size"], d_model=c["d_model"], max_len=c["max_len"],
        n_layers=c["n_layers"], ffn_expansion=c["ffn_expansion"], n_attn_heads=c["n_attn_heads"],
    )


def check_shipped():
    path = "fixtures/succulm_upper_middle.safetensors"
    with safe_open(path, "pt") as f:
        meta = f.metadata()
    config = json.loads(meta["config"])
    model = build(config)
    sd = load_file(path)
    print(path, model.load_state_dict(sd, strict=True))
    model.eval()
    with open("fixtures/parity_upper_middle.json") as f:
        parity = json.load(f)
    worst = 0.0
    for row in parity["rows"]:
        with torch.no_grad():
            logits = model(torch.tensor([row["ids"]]))[0].reshape(-1)
        worst = max(worst, (logits - torch.tensor(row["logits"])).abs().max().item())
    print(f"max |logits - parity_upper_middle.json| = {worst:.3g}")
    assert worst < 1e-4, worst


def write_tiny():
    with open("fixtures/parity_tiny.json") as f:
        fixture = json.load(f)
    ckpt = fixture["checkpoint"]
    model = build(ckpt["config"])
    sd = {k: torch.tensor(v["data"], dtype=torch.float32).reshape(v["shape"])
          for k, v in ckpt["state_dict"].items()}
    model.load_state_dict(sd, strict=False)  # pos_enc.pe may be absent from the JSON
    model.eval()
    x = torch.tensor(fixture["x"])
    with torch.no_grad():
        logits = model(x).reshape(-1)
    want = torch.tensor(fixture["logits"]["data"])
    assert (logits - want).abs().max().item() < 1e-5
    meta = {k: json.dumps(ckpt[k]) for k in ["format_version", "profile", "config", "vocab"]}
    out = "fixtures/parity_tiny.safetensors"
    tmp = "fixtures/.parity_tiny.safetensors.tmp"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, tmp, metadata=meta)
    os.replace(tmp, out)
    # Round trip on the PyTorch side too.
    again = build(ckpt["config"])
    print(out, again.load_state_dict(load_file(out), strict=True))
    print("wrote", out)


def main():
    check_shipped()
    write_tiny()


if __name__ == "__main__":
    main()
