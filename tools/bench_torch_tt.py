"""PyTorch baselines for benches/tt_contraction.rs, measured on this machine.

Re-implements the seed's einsum TT layer (cores in the seed's layout: output modes first, then
input modes; 2-D end cores; one `torch.einsum` over the whole chain) and times its forward, the
dense nn.Linear, and the TT-SVD (torch.linalg.svd, f32) of the 3072x768 matrix.
Not used by tests. Run: python3 tools/bench_torch_tt.py
"""
import string
import time

import torch



def require_opt_einsum():
    """Exits unless opt_einsum is installed: without it torch.einsum contracts left to right."""
    try:
        import opt_einsum  # noqa: F401  (torch.einsum uses it to order contractions when present)
    except ImportError:
        raise SystemExit(
            "opt_einsum is required: without it torch.einsum contracts left to right and the "
            "seed's TT layer is 50-1000x slower, which makes the comparison meaningless. "
            "Install it with: pip install opt_einsum"
        )


require_opt_einsum()

# (in, out, in modes, out modes, bond dims, row counts): the seed's FFN and a GPT-2-sized one.
CASES = [
    (50, 200, [5, 10], [10, 20], [10, 27, 10], [1, 29, 928]),
    (768, 3072, [8, 8, 12], [12, 16, 16], [16] * 5, [1, 128]),
]


def tt_svd(w, out_modes, in_modes, bonds):
    modes = list(out_modes) + list(in_modes)
    d = len(modes)
    c = w.reshape(-1)
    cores, r_prev = [], 1
    for k in range(d - 1):
        c = c.reshape(r_prev * modes[k], -1)
        u, s, vt = torch.linalg.svd(c, full_matrices=False)
        r = min(bonds[k], s.shape[0])
        cores.append(u[:, :r].reshape(r_prev, modes[k], r))
        c = torch.diag(s[:r]) @ vt[:r]
        r_prev = r
    cores.append(c.reshape(r_prev, modes[-1], 1))
    cores[0] = cores[0].reshape(cores[0].shape[1], cores[0].shape[2])
    cores[-1] = cores[-1].reshape(cores[-1].shape[0], cores[-1].shape[1])
    return cores


def einsum_expr(m, n):
    letters = iter(string.ascii_letters)
    o = [next(letters) for _ in range(m)]
    i = [next(letters) for _ in range(n)]
    a = [next(letters) for _ in range(m + n - 1)]
    b = next(letters)
    modes = o + i
    terms = []
    for k in range(m + n):
        if k == 0:
            terms.append(modes[0] + a[0])
        elif k == m + n - 1:
            terms.append(a[k - 1] + modes[k])
        else:
            terms.append(a[k - 1] + modes[k] + a[k])
    # Operands are passed input-side core first (x, G_d, …, G_1): without opt_einsum, torch
    # contracts left to right, and this order is the sensible sweep.
    return f"{b}{''.join(i)}," + ",".join(reversed(terms)) + f"->{b}{''.join(o)}"


def timeit(f, min_time=0.5):
    for _ in range(3):
        f()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < min_time:
        f()
        n += 1
    return (time.perf_counter() - t0) / n


def main():
    torch.manual_seed(1234)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"opt_einsum {torch.backends.opt_einsum.is_available()} "
          f"(strategy {torch.backends.opt_einsum.strategy})")
    with torch.no_grad():
        for inf, outf, im, om, bonds, rows_list in CASES:
            lin = torch.nn.Linear(inf, outf)
            cores = tt_svd(lin.weight, om, im, bonds)
            expr = einsum_expr(len(om), len(im))
            for rows in rows_list:
                x = torch.randn(rows, inf)
                xr = x.reshape(rows, *im)
                tt = timeit(lambda: torch.einsum(expr, xr, *reversed(cores)).reshape(rows, outf) + lin.bias)
                dense = timeit(lambda: lin(x))
                print(f"{inf}->{outf} bonds {bonds} rows {rows}: einsum TT {tt * 1e6:.1f} us, dense {dense * 1e6:.1f} us")
        lin = torch.nn.Linear(768, 3072)
        t = timeit(lambda: tt_svd(lin.weight, [12, 16, 16], [8, 8, 12], [16] * 5), min_time=2.0)
        print(f"TT-SVD 3072x768 bonds 16: {t * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
