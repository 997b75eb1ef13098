#!/usr/bin/env python3
"""The Python module's TTLayer.forward (numpy in, numpy out) against the seed's PyTorch einsum
TT layer (tools/bench_torch_tt.py; opt_einsum used when installed) on the same shapes, cores and
inputs. Not a test. Needs the module installed (`pip install ./python`) and torch.

    python3 tools/bench_py_tt.py [--threads N]   # torch intra-op threads (default 1)
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
from bench_torch_tt import CASES, einsum_expr, timeit  # noqa: E402

import succulm  # noqa: E402


def main():
    threads = int(sys.argv[sys.argv.index("--threads") + 1]) if "--threads" in sys.argv else 1
    torch.set_num_threads(threads)
    torch.manual_seed(1234)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"opt_einsum {torch.backends.opt_einsum.is_available()}")
    with torch.no_grad():
        for inf, outf, im, om, bonds, rows_list in CASES:
            lin = torch.nn.Linear(inf, outf)
            w = lin.weight.numpy().copy()
            b = lin.bias.numpy().copy()
            ours = succulm.TTLayer.from_linear(w, b, im, om, bonds=bonds)
            cores = [torch.from_numpy(c) for c in ours.cores]  # the same cores on both sides
            expr = einsum_expr(len(om), len(im))
            for rows in rows_list:
                x = torch.randn(rows, inf)
                xn = x.numpy()
                xr = x.reshape(rows, *im)
                y_t = torch.einsum(expr, xr, *reversed(cores)).reshape(rows, outf) + lin.bias
                y_o = ours.forward(xn)
                err = np.abs(y_o - y_t.numpy()).max() / max(np.abs(y_t.numpy()).max(), 1e-6)
                assert err < 1e-4, err
                t_torch = timeit(
                    lambda: torch.einsum(expr, xr, *reversed(cores)).reshape(rows, outf) + lin.bias)
                t_ours = timeit(lambda: ours.forward(xn))
                print(f"{inf}->{outf} bonds {bonds} rows {rows}: succulm.TTLayer.forward "
                      f"{t_ours * 1e6:.1f} us, torch einsum {t_torch * 1e6:.1f} us "
                      f"({t_torch / t_ours:.2f}x)")


if __name__ == "__main__":
    main()
