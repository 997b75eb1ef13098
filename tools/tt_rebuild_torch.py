#!/usr/bin/env python3
"""Rebuilds, in PyTorch, the layers that `examples/compress.rs` wrote as tensor-train cores, and
writes the fixtures tests/compress.rs checks our side against.

1. Writes fixtures/compress_tiny.safetensors: a small random model made by PyTorch with both
   weight layouts: `fc` an nn.Linear 12 -> 20 (`[out, in]`), and GPT-2-style Conv1D weights
   `h.0.mlp.c_fc` 12 -> 30 and `h.0.mlp.c_proj` 30 -> 12 (`[in, out]`, `y = x @ W + b`), plus a
   LayerNorm weight that is not selected.
2. Runs our example on it (bonds 3, two balanced modes a side):
     fixtures/compress_tiny_tt_linear.safetensors   (--pattern fc.weight --layout out_in)
     fixtures/compress_tiny_tt_conv1d.safetensors   (--pattern 'h.*.mlp.*.weight' --layout in_out)
3. Rebuilds each layer from the cores in PyTorch (the seed's layout: output modes then input
   modes), checks the weight error against the one our report gives, and applies the rebuilt
   layer and the original to random inputs; writes them to fixtures/compress_tiny_check.safetensors
   (`{module}.x`, `{module}.y_tt`, `{module}.y_dense`).

Needs torch, safetensors and cargo. Run from the crate root:
    python3 tools/tt_rebuild_torch.py
"""
import json
import os
import subprocess
import tempfile

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

BOND = 3


def source_model():
    g = torch.Generator().manual_seed(14)
    fc = torch.nn.Linear(12, 20)
    with torch.no_grad():
        fc.weight.copy_(torch.randn(20, 12, generator=g) * 0.3)
        fc.bias.copy_(torch.randn(20, generator=g) * 0.1)
    sd = {
        "fc.weight": fc.weight.detach().clone(),  # [out, in]
        "fc.bias": fc.bias.detach().clone(),
        "h.0.mlp.c_fc.weight": torch.randn(12, 30, generator=g) * 0.3,  # Conv1D [in, out]
        "h.0.mlp.c_fc.bias": torch.randn(30, generator=g) * 0.1,
        "h.0.mlp.c_proj.weight": torch.randn(30, 12, generator=g) * 0.3,
        "h.0.mlp.c_proj.bias": torch.randn(12, generator=g) * 0.1,
        "ln_f.weight": torch.ones(12),
    }
    return sd


def dense_from_cores(cores, in_modes, out_modes):
    """Contracts the seed-layout chain [o_1..o_M, i_1..i_N] back to W [out, in]."""
    t = cores[0]  # [n_0, r_1] (or [n_0] for one core)
    for c in cores[1:]:
        if c.dim() == 3:  # [r, n, r']
            t = torch.tensordot(t, c, dims=([t.dim() - 1], [0]))
        else:  # last core [r, n]
            t = torch.tensordot(t, c, dims=([t.dim() - 1], [0]))
    out = 1
    for o in out_modes:
        out *= o
    return t.reshape(out, -1)


def run_example(args):
    cmd = ["cargo", "run", "--release", "--quiet", "--example", "compress", "--"] + args
    print("$", " ".join(cmd))
    subprocess.run(cmd, check=True)


def main():
    sd = source_model()
    src = "fixtures/compress_tiny.safetensors"
    save_file(sd, src)
    runs = {
        "linear": ("fc.weight", "out_in"),
        "conv1d": ("h.*.mlp.*.weight", "in_out"),
    }
    g = torch.Generator().manual_seed(15)
    check = {}
    for tag, (pattern, layout) in runs.items():
        out = f"fixtures/compress_tiny_tt_{tag}.safetensors"
        with tempfile.TemporaryDirectory() as d:
            report_path = os.path.join(d, "report.json")
            run_example(["--input", src, "--output", out, "--pattern", pattern, "--layout", layout,
                         "--modes", "auto:2", "--bond", str(BOND), "--report", report_path])
            with open(report_path) as f:
                report = {m["module"]: m for m in json.load(f)["matrices"]}
        with safe_open(out, "pt") as f:
            layers = json.loads(f.metadata()["tt_layers"])
        tensors = load_file(out)
        for module, entry in layers.items():
            spec = entry["spec"]
            assert spec["layout"] == "OutputsThenInputs"
            k = len(spec["in_modes"]) + len(spec["out_modes"])
            cores = [tensors[f"{module}.cores.{i}"].double() for i in range(k)]
            w_tt = dense_from_cores(cores, spec["in_modes"], spec["out_modes"])
            stored = sd[entry["source"]].double()
            w = stored if entry["layout"] == "out_in" else stored.T  # -> [out, in]
            err = ((w_tt - w).norm() / w.norm()).item()
            ours = report[module]["weight_error"]
            print(f"{module}: bonds {spec['bond_dims']}, weight error torch {err:.6f}, ours {ours:.6f}")
            assert abs(err - ours) < 1e-5, (err, ours)
            b_tt = tensors[f"{module}.bias"].double()
            b = sd[f"{module}.bias"].double()
            assert torch.equal(b_tt, b)
            x = torch.randn(5, w.shape[1], generator=g, dtype=torch.float64)
            check[f"{module}.x"] = x.float()
            check[f"{module}.y_tt"] = (x @ w_tt.T + b_tt).float()
            # The original layer, as its library applies it.
            if entry["layout"] == "out_in":
                y = x @ stored.T + b  # nn.Linear
            else:
                y = x @ stored + b  # Conv1D
            check[f"{module}.y_dense"] = y.float()
    save_file(check, "fixtures/compress_tiny_check.safetensors")
    print("wrote fixtures/compress_tiny*.safetensors")


if __name__ == "__main__":
    main()
