#!/usr/bin/env python3
"""Writes a random GPT-2-small-shaped MLP stack as safetensors (12 blocks; Conv1D weights
`h.{i}.mlp.c_fc.weight` [768, 3072] and `h.{i}.mlp.c_proj.weight` [3072, 768] with biases), to
time `examples/compress.rs` on the 24 matrices of GPT-2 small (226 MB; not a fixture). Needs
PyTorch and the `safetensors` package (`pip install torch safetensors`):

    python3 tools/make_gpt2_shaped.py /tmp/gpt2_mlp.safetensors
    cargo run --release --example compress -- --input /tmp/gpt2_mlp.safetensors \
        --output /tmp/gpt2_mlp_tt.safetensors --pattern 'h.*.mlp.c_*.weight' --layout in_out \
        --modes auto:3 --bond 16
"""
import sys

import torch
from safetensors.torch import save_file


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "/tmp/gpt2_mlp.safetensors"
    g = torch.Generator().manual_seed(2)
    sd = {}
    for i in range(12):
        sd[f"h.{i}.mlp.c_fc.weight"] = torch.randn(768, 3072, generator=g) * 0.02
        sd[f"h.{i}.mlp.c_fc.bias"] = torch.zeros(3072)
        sd[f"h.{i}.mlp.c_proj.weight"] = torch.randn(3072, 768, generator=g) * 0.02
        sd[f"h.{i}.mlp.c_proj.bias"] = torch.zeros(768)
    save_file(sd, path)
    print("wrote", path)


if __name__ == "__main__":
    main()
