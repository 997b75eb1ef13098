#!/usr/bin/env python3
"""Times the seed's PyTorch SuccuLM (the classes re-typed in make_parity_fixture.py) on the
shapes of `benches/model.rs`, for comparison with our figures on the same machine:
one Adam step of `upper_middle` on a 32x29 batch (forward, cross-entropy with PAD ignored,
backward, step), and forwards of 1x29 and 32x29 (under torch.no_grad).

Prints min and median over repeated runs (the wall clock of a shared VM is noisy: compare
runs made close in time). Needs torch. Run from the crate root:
    python3 tools/bench_torch_model.py [--threads N] [--reps R]
"""
import argparse
import statistics
import time

import torch

import torch.nn as nn
import torch.optim as optim

from bench_torch_tt import require_opt_einsum  # noqa: F401  (importing it exits without opt_einsum)
from make_parity_fixture import SuccuLM


def timed(fn, reps, inner):
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - t0) / inner)
    return min(times), statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--reps", type=int, default=15)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    vocab, seq = 155, 29
    model = SuccuLM(vocab, d_model=50, max_len=29, n_layers=4, ffn_expansion=4, n_attn_heads=5)
    opt = optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss(ignore_index=0)
    x = torch.randint(4, vocab, (32, seq))
    y = torch.randint(4, vocab, (32, seq))
    x1 = torch.randint(4, vocab, (1, seq))

    def step():
        opt.zero_grad()
        logits = model(x)
        loss = loss_fn(logits.reshape(-1, vocab), y.reshape(-1))
        loss.backward()
        opt.step()

    def fwd(ids):
        with torch.no_grad():
            model(ids)

    for fn in (step, lambda: fwd(x), lambda: fwd(x1)):
        for _ in range(20):
            fn()
    s = timed(step, args.reps, 10)
    f32 = timed(lambda: fwd(x), args.reps, 10)
    f1 = timed(lambda: fwd(x1), args.reps, 100)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"opt_einsum {torch.backends.opt_einsum.is_available()}")
    print(f"adam step 32x29: min {s[0] * 1e3:.2f} ms, median {s[1] * 1e3:.2f} ms "
          f"({32 * seq / s[1]:.0f} tokens/s at the median)")
    print(f"forward 32x29:   min {f32[0] * 1e3:.2f} ms, median {f32[1] * 1e3:.2f} ms")
    print(f"forward 1x29:    min {f1[0] * 1e6:.0f} us, median {f1[1] * 1e6:.0f} us")


if __name__ == "__main__":
    main()
