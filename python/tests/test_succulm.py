"""The Python module against numpy: TTLayer at full rank is the dense layer, to_dense round
trips, truncation behaves, errors are Python exceptions with the crate's messages, and the
model side (load both formats, forward, tensorize, generate, layer_sweep) works."""
import json
import os
import shutil
import subprocess

import numpy as np
import pytest

import succulm

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
FIXTURES = os.path.join(ROOT, "fixtures")
CKPT = os.path.join(FIXTURES, "succulm_upper_middle")


def layer(seed=0, out=200, inp=50):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((out, inp)).astype(np.float32)
    b = rng.standard_normal(out).astype(np.float32)
    return w, b


def test_forward_at_full_rank_is_the_dense_layer():
    w, b = layer()
    tt = succulm.TTLayer.from_linear(w, b, in_modes=[5, 10], out_modes=[10, 20])
    x = np.random.default_rng(1).standard_normal((7, 50)).astype(np.float32)
    y = tt.forward(x)
    assert y.shape == (7, 200) and y.dtype == np.float32
    np.testing.assert_allclose(y, x @ w.T + b, rtol=1e-4, atol=1e-4)
    assert tt.relative_error < 1e-5
    assert tt.bond_dims == [10, 50, 10]
    # float64 inputs are converted.
    np.testing.assert_allclose(tt.forward(x.astype(np.float64)), y, rtol=1e-6, atol=1e-6)


def test_to_dense_round_trip_and_cores():
    w, b = layer(2)
    tt = succulm.TTLayer.from_linear(w, b, [5, 10], [10, 20], bonds=[10, 50, 10])
    np.testing.assert_allclose(tt.to_dense(), w, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(tt.bias, b)
    cores = tt.cores
    assert [c.shape for c in cores] == [(10, 10), (10, 20, 50), (50, 5, 10), (10, 10)]
    assert tt.num_params == sum(c.size for c in cores)
    # Contract the cores with numpy: the same dense weight.
    t = cores[0]
    for c in cores[1:]:
        t = np.tensordot(t, c, axes=([t.ndim - 1], [0]))
    np.testing.assert_allclose(t.reshape(200, 50), tt.to_dense(), rtol=1e-5, atol=1e-5)


def test_truncation_by_bonds_and_eps():
    w, b = layer(3)
    small = succulm.TTLayer.from_linear(w, b, [5, 10], [10, 20], bonds=[10, 5, 10])
    assert small.bond_dims == [10, 5, 10]
    err = np.linalg.norm(small.to_dense() - w) / np.linalg.norm(w)
    assert abs(err - small.relative_error) < 1e-5 and err > 0.1
    assert small.num_params < 12_700
    # A uniform int bond; a tolerance.
    assert succulm.TTLayer.from_linear(w, b, [5, 10], [10, 20], bonds=3).bond_dims == [3, 3, 3]
    tol = succulm.TTLayer.from_linear(w, b, [5, 10], [10, 20], eps=0.5)
    assert tol.relative_error <= 0.5 + 1e-6


def test_tt_svd_matches_numpy_reconstruction():
    a = np.random.default_rng(4).standard_normal((4, 6, 5)).astype(np.float32)
    r = succulm.tt_svd(a)
    assert r["bond_dims"] == [4, 5]
    c0, c1, c2 = r["cores"]
    back = np.einsum("xai,ibj,jcy->abc", c0, c1, c2)
    np.testing.assert_allclose(back, a, rtol=1e-4, atol=1e-4)
    cut = succulm.tt_svd(a, bonds=[2, 2])
    assert cut["bond_dims"] == [2, 2] and cut["error_bound"] > 0
    # The first bond's singular values are those of the [4, 30] unfolding.
    np.testing.assert_allclose(r["singular_values"][0], np.linalg.svd(a.reshape(4, 30))[1],
                               rtol=1e-4)


def test_errors_are_python_exceptions_with_the_crate_message():
    w, b = layer()
    with pytest.raises(ValueError, match=r"in_modes.*product of \[5, 9\] is 45"):
        succulm.TTLayer.from_linear(w, b, [5, 9], [10, 20])
    with pytest.raises(ValueError, match="bond dim 1 is 0"):
        succulm.TTLayer.from_linear(w, b, [5, 10], [10, 20], bonds=[10, 0, 10])
    tt = succulm.TTLayer.from_linear(w, b, [5, 10], [10, 20], bonds=4)
    with pytest.raises(ValueError, match="shape mismatch"):
        tt.forward(np.zeros((3, 49), np.float32))
    with pytest.raises(OSError, match="no-such-file"):
        succulm.Model.load("no-such-file.safetensors")
    with pytest.raises(ValueError, match="eps"):
        succulm.tt_svd(np.ones((3, 3), np.float32), eps=2.0)


def test_model_load_forward_tensorize_generate():
    m_json = succulm.Model.load(CKPT + ".json")
    m_st = succulm.Model.load(CKPT + ".safetensors")
    ids = np.array([[1, 5, 9, 13]], dtype=np.int64)
    logits = m_st.forward(ids)
    assert logits.shape == (1, 4, m_st.config["vocab_size"])
    np.testing.assert_array_equal(logits, m_json.forward(ids))
    sd = m_st.state_dict()
    assert sd["embed.weight"].shape == (m_st.config["vocab_size"], m_st.config["d_model"])
    with pytest.raises(ValueError, match="out of range"):
        m_st.forward(np.array([[1, 10_000]]))
    report = m_st.tensorize_ffn(0, 5)
    assert report["block"] == 0 and report["up"]["bond_dims"][1] == 5
    assert 0 < report["up"]["rel_error"] < 1
    changed = m_st.forward(ids)
    assert not np.array_equal(changed, logits)
    text = m_json.generate("is winy a girl?", temperature=0.6, seed=1)
    assert isinstance(text, str) and text
    assert text == m_json.generate("is winy a girl?", temperature=0.6, seed=1)
    with pytest.raises(ValueError, match="temperature"):
        m_json.generate("is winy a girl?", temperature=0.0)


def test_layer_sweep_report_is_plain_data():
    report = succulm.layer_sweep(checkpoint=CKPT + ".safetensors", fixtures=FIXTURES,
                                 blocks="0", bonds=[5], samples=1, threads=1)
    assert isinstance(report, dict)
    cells = report["cells"]
    assert len(cells) == 1 and cells[0]["bond"] == 5 and cells[0]["blocks"] == [0]
    assert report["reference"] is not None
    with pytest.raises(ValueError, match="unknown method"):
        succulm.layer_sweep(checkpoint=CKPT + ".json", fixtures=FIXTURES, methods="nope")


def test_layer_sweep_counts_above_their_ceilings_are_refused_before_any_work():
    # 10**12 samples per probe would take hundreds of GB: refused at once, naming the option.
    for kw, name in [({"samples": 10**12}, "samples"), ({"threads": 10**6}, "threads"),
                     ({"heal_epochs": 10**12}, "heal_epochs")]:
        with pytest.raises(ValueError, match=f"`{name}`: .* ceiling"):
            succulm.layer_sweep(checkpoint=CKPT + ".json", fixtures=FIXTURES, **kw)


def rust_layer_sweep():
    """The Rust example `layer_sweep`, built by cargo (a no-op when it is up to date)."""
    cargo = shutil.which("cargo")
    if cargo is None:
        pytest.skip("cargo is not on PATH: cannot build the Rust example")
    build = subprocess.run(
        [cargo, "build", "--release", "--example", "layer_sweep",
         "--message-format=json-render-diagnostics"],
        cwd=ROOT, capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    for line in build.stdout.splitlines():
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if (msg.get("reason") == "compiler-artifact"
                and msg["target"]["name"] == "layer_sweep" and msg.get("executable")):
            return msg["executable"]
    raise AssertionError("cargo built no layer_sweep example")


def test_layer_sweep_writes_the_rust_examples_files_byte_for_byte(tmp_path):
    """One study setup: the same options give the same files from Python and from the Rust
    example (the seed's settings and the novel word-link rate included)."""
    exe = rust_layer_sweep()
    rust_dir, py_dir = tmp_path / "rust", tmp_path / "py"
    run = subprocess.run(
        [exe, "--checkpoint", CKPT + ".json", "--fixtures", FIXTURES, "--bonds", "20",
         "--samples", "2", "--out", str(rust_dir)],
        cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    report = succulm.layer_sweep(checkpoint=CKPT + ".json", fixtures=FIXTURES, bonds=[20],
                                 samples=2, out=str(py_dir), experiments=True)
    names = sorted(os.listdir(rust_dir))
    assert "sweep.json" in names and "verdicts.json" in names and "report.html" in names
    assert sorted(os.listdir(py_dir)) == names
    for name in names:
        assert (py_dir / name).read_bytes() == (rust_dir / name).read_bytes(), name
    # What the Python sweep used to miss: the seed's settings, the novel word-link rate.
    assert [s["id"] for s in report["settings"]] == [
        "loosening", "tightening", "pair_0_1", "pair_2_3", "pair_1_2"]
    for cell in report["cells"] + report["settings"]:
        assert 0.0 <= cell["metrics"]["sampled"]["novel_bigram_rate"] <= 1.0
    assert len(report["cells"]) == len(json.loads((rust_dir / "sweep.json").read_text())["cells"])
