#!/usr/bin/env python3
"""Writes fixtures/hf/: a byte-level BPE tokenizer trained on the SuccuLM corpus and three tiny
random Hugging Face causal LMs (GPT-2, LLaMA with grouped-query attention, the same LLaMA in BF16),
each with a parity file (batch ids, logits, loss, every parameter's gradient, a KV-cache greedy
decode) for checking a Rust loader of "bring your own transformer" checkpoints.

Deterministic (fixed seeds, one thread). Needs torch, transformers, tokenizers and safetensors
(none of them needed by the tests). Run once from the crate root:
    python3 tools/make_hf_fixtures.py            # [--out fixtures/hf]
See fixtures/hf/README.md for what each file holds and the versions that wrote them.
"""
import argparse
import json
import os
import random
import shutil
import sys

import safetensors
import tokenizers
import torch
import transformers
from safetensors import safe_open
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

SEED = 2024
VOCAB = 512
EOT = "<|endoftext|>"
SEQ = 12  # batch columns
PROMPT = 5  # prompt length of the greedy decode (first ids of row 0)
NEW_TOKENS = 6
N_TOKENIZER_CHECKS = 20
ROUND_TRIP_TOL = 1e-6

TF_MAJOR = int(transformers.__version__.split(".")[0])
# transformers 5 renamed from_pretrained's `torch_dtype` to `dtype`.
DTYPE_KW = "dtype" if TF_MAJOR >= 5 else "torch_dtype"


def versions():
    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "safetensors": safetensors.__version__,
    }


# ----- corpus -----
def load_corpus(fixtures):
    """The pairs of both corpus files, normal pairs first (as `succulm::text::data::load_corpus`)."""
    pairs = []
    for name in ("succulm_normal_sentence_pairs.json", "succulm_question_answer_pairs.json"):
        with open(os.path.join(fixtures, name), encoding="utf-8") as f:
            pairs.extend((a, b) for a, b in json.load(f))
    return pairs


def unique_sentences(pairs):
    seen, out = set(), []
    for a, b in pairs:
        for s in (a, b):
            if s not in seen:
                seen.add(s)
                out.append(s)
    return out


# ----- tokenizer -----
def train_tokenizer(sentences):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB,
        min_frequency=1,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(sentences, trainer=trainer, length=len(sentences))
    return tok


# ----- models -----
def init_weights(model, seed):
    """normal(0, 0.2) on every parameter (biases too); norm weights 1 + 0.1 * normal."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g, dtype=torch.float32)
            is_norm_weight = name.endswith(".weight") and (
                ".ln_" in name or "layernorm" in name or name.endswith("norm.weight")
            )
            if is_norm_weight:
                p.copy_(1.0 + 0.1 * noise)
            else:
                p.copy_(0.2 * noise)


def shared(eot_id):
    """The config options both tiny models share."""
    return dict(vocab_size=VOCAB, bos_token_id=eot_id, eos_token_id=eot_id,
                attn_implementation="eager")


def build(model_class, config, seed):
    """`model_class(config)` with eager attention and the fixtures' weights (`init_weights`)."""
    torch.manual_seed(seed)
    model = model_class(config)
    assert model.config._attn_implementation == "eager"
    init_weights(model, seed)
    return model


def gpt2_tiny(eot_id, seed):
    config = GPT2Config(n_positions=32, n_embd=16, n_layer=2, n_head=2,
                        activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0,
                        attn_pdrop=0.0, tie_word_embeddings=True, **shared(eot_id))
    model = build(GPT2LMHeadModel, config, seed)
    model.tie_weights()
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()
    return model


def llama_tiny(eot_id, seed):
    config = LlamaConfig(hidden_size=16, intermediate_size=40, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, hidden_act="silu",
                         max_position_embeddings=32, rms_norm_eps=1e-6, rope_theta=10000.0,
                         attention_bias=False, mlp_bias=False, attention_dropout=0.0,
                         tie_word_embeddings=False, **shared(eot_id))
    model = build(LlamaForCausalLM, config, seed)
    assert model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr()
    return model


def load(path, **kw):
    kw.setdefault("attn_implementation", "eager")
    model, info = AutoModelForCausalLM.from_pretrained(path, output_loading_info=True, **kw)
    bad = {k: v for k, v in info.items() if v}
    assert not bad, f"{path}: loading was not strict: {bad}"
    return model.eval()


# ----- parity -----
def parity(model, batch, eot_id):
    """Logits, loss and gradients of `batch` [2, SEQ]; a greedy KV-cache decode of row 0's prompt."""
    model.eval()
    model.zero_grad(set_to_none=True)
    out = model(input_ids=batch, labels=batch, use_cache=False)
    out.loss.backward()
    grads = {}
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        grads[name] = p.grad.detach().float().contiguous().clone()
    model.zero_grad(set_to_none=True)
    logits = out.logits.detach().float().contiguous()

    prompt = batch[:1, :PROMPT]
    with torch.no_grad():
        gen = model.generate(
            prompt,
            attention_mask=torch.ones_like(prompt),
            do_sample=False,
            max_new_tokens=NEW_TOKENS,
            use_cache=True,
            pad_token_id=eot_id,
            eos_token_id=eot_id,
            output_logits=True,
            return_dict_in_generate=True,
        )
    ids = gen.sequences
    assert ids.shape == (1, PROMPT + NEW_TOKENS), f"decode stopped early: {ids.tolist()}"
    gen_logits = torch.cat([l.float() for l in gen.logits], dim=0).contiguous()  # [NEW_TOKENS, V]

    # The cached decode must agree with full forwards without cache.
    with torch.no_grad():
        full = model(input_ids=ids, use_cache=False).logits[0].float()
    ref = full[PROMPT - 1 : PROMPT - 1 + NEW_TOKENS]
    tol = 1e-5 if next(model.parameters()).dtype == torch.float32 else 5e-2
    err = (ref - gen_logits).abs().max().item()
    assert err <= tol, f"KV-cache decode differs from the full forward by {err}"
    assert torch.equal(ref.argmax(-1), ids[0, PROMPT:]), "greedy ids differ from the full forward"
    return logits, out.loss.detach().float(), grads, ids, gen_logits


def write_parity(dirpath, name, model, batch, batch_texts, eot_id, note, tok_checks):
    logits, loss, grads, gen_ids, gen_logits = parity(model, batch, eot_id)
    tensors = {
        "input_ids": batch.to(torch.int64).clone(),
        "logits": logits,
        "loss": loss.reshape(1).contiguous(),
        "generate.input_ids": batch[:1, :PROMPT].to(torch.int64).clone(),
        "generate.sequences": gen_ids.to(torch.int64).contiguous(),
        "generate.logits": gen_logits,
    }
    for k, g in grads.items():
        tensors["grad." + k] = g
    save_file(tensors, os.path.join(dirpath, "parity.safetensors"), metadata={"model": name})
    params = {k: list(p.shape) for k, p in model.named_parameters()}
    meta = {
        "model": name,
        "versions": versions(),
        "transformers_major": TF_MAJOR,
        "seed": SEED,
        "parameters": sum(p.numel() for p in model.parameters()),
        "parameter_shapes": params,
        "weights_dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
        "compute_note": note,
        "attn_implementation": "eager",
        "batch": {
            "texts": batch_texts,
            "input_ids": batch.tolist(),
            "shape": list(batch.shape),
            "note": "each row: the first 12 tokenizer ids of the text (no padding, no special tokens)",
        },
        "loss": loss.item(),
        "loss_note": "mean next-token cross-entropy over the 2 x 11 shifted positions (model(ids, labels=ids))",
        "logits_max_abs": logits.abs().max().item(),
        "generate": {
            "prompt_ids": batch[0, :PROMPT].tolist(),
            "sequences": gen_ids[0].tolist(),
            "new_ids": gen_ids[0, PROMPT:].tolist(),
            "call": f"model.generate(prompt, do_sample=False, max_new_tokens={NEW_TOKENS}, use_cache=True, "
            f"pad_token_id={eot_id}, eos_token_id={eot_id}, output_logits=True, return_dict_in_generate=True)",
            "logits_note": "generate.logits[i] = raw logits that chose new token i (position PROMPT-1+i)",
        },
        "tensors": {
            k: {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape)} for k, v in tensors.items()
        },
        "tokenizer_checks": tok_checks,
    }
    with open(os.path.join(dirpath, "parity.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    return meta, logits


def max_diff(a, b):
    return (a.float() - b.float()).abs().max().item()


def logits_of(model, batch):
    with torch.no_grad():
        return model(input_ids=batch, use_cache=False).logits


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fixtures", default="fixtures")
    ap.add_argument("--out", default=os.path.join("fixtures", "hf"))
    args = ap.parse_args()

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    random.seed(SEED)
    transformers.set_seed(SEED)
    vers = versions()
    print("versions:", " ".join(f"{k}={v}" for k, v in vers.items()))

    # ---- 1. tokenizer ----
    pairs = load_corpus(args.fixtures)
    sentences = unique_sentences(pairs)
    tok = train_tokenizer(sentences)
    tok2 = train_tokenizer(sentences)
    assert tok.to_str() == tok2.to_str(), "BPE training is not deterministic"
    eot_id = tok.token_to_id(EOT)
    assert tok.get_vocab_size() == VOCAB, f"vocab {tok.get_vocab_size()} != {VOCAB}"
    os.makedirs(args.out, exist_ok=True)
    tok_path = os.path.join(args.out, "tokenizer.json")
    tok.save(tok_path, pretty=True)
    tok = Tokenizer.from_file(tok_path)
    print(f"tokenizer: {len(sentences)} sentences, vocab {tok.get_vocab_size()}, {EOT} = {eot_id}")

    rng = random.Random(SEED)
    picked = rng.sample(sentences, N_TOKENIZER_CHECKS - 2)
    # two odd ones: a whole training pair and a text with the special token and non-ASCII bytes
    picked.append(f"{pairs[0][0]} {pairs[0][1]}")
    picked.append(f"{pairs[1][0]}{EOT}winy é 🌵 Ruby  2024!")
    tok_checks = []
    for s in picked:
        enc = tok.encode(s)
        assert tok.decode(enc.ids, skip_special_tokens=False) == s, s
        tok_checks.append({"text": s, "ids": enc.ids, "tokens": enc.tokens})

    # the batch: the first pair of each file whose "s1 s2" has at least SEQ tokens, cut to SEQ
    rows, texts = [], []
    n_normal = 640
    for start in (0, n_normal):
        for a, b in pairs[start:]:
            text = f"{a} {b}"
            ids = tok.encode(text).ids
            if len(ids) >= SEQ:
                rows.append(ids[:SEQ])
                texts.append(text)
                break
    assert len(rows) == 2
    batch = torch.tensor(rows, dtype=torch.int64)
    assert eot_id not in batch.tolist()[0] + batch.tolist()[1]

    # ---- 2.-4. models ----
    built = {
        "gpt2_tiny": gpt2_tiny(eot_id, SEED),
        "llama_tiny": llama_tiny(eot_id, SEED + 1),
    }
    summary = {}
    for name, model in built.items():
        d = os.path.join(args.out, name)
        if os.path.isdir(d):
            shutil.rmtree(d)
        model.eval()
        model.save_pretrained(d, safe_serialization=True)
        shutil.copyfile(tok_path, os.path.join(d, "tokenizer.json"))
        meta, logits = write_parity(d, name, model, batch, texts, eot_id, "F32 weights, F32 compute", tok_checks)
        with safe_open(os.path.join(d, "model.safetensors"), "pt") as f:
            keys = list(f.keys())
            dtypes = {str(f.get_tensor(k).dtype) for k in keys}
        re = load(d)
        err = max_diff(logits_of(re, batch), logits)
        assert err <= ROUND_TRIP_TOL, f"{name}: round trip differs by {err}"
        summary[name] = {**meta, "saved_keys": keys, "saved_dtypes": sorted(dtypes), "round_trip_err": err}

    # the same LLaMA weights in BF16
    name = "llama_tiny_bf16"
    d = os.path.join(args.out, name)
    if os.path.isdir(d):
        shutil.rmtree(d)
    f32_buffers = {k: b.clone() for k, b in built["llama_tiny"].named_buffers()}
    bf16 = built["llama_tiny"].to(torch.bfloat16).eval()
    bf16.save_pretrained(d, safe_serialization=True)
    # `.to(bfloat16)` also casts the RoPE buffers (inv_freq, not saved), while from_pretrained
    # recomputes them in F32 whatever the dtype: keep a copy with the cast ones to report the
    # difference, and give the in-memory model F32 ones so that it is what a reload gives.
    with torch.no_grad():
        cast_buffers_logits = logits_of(bf16, batch)
    for k, b in f32_buffers.items():
        owner, leaf = k.rsplit(".", 1)
        setattr(bf16.get_submodule(owner), leaf, b)
    shutil.copyfile(tok_path, os.path.join(d, "tokenizer.json"))
    with safe_open(os.path.join(d, "model.safetensors"), "pt") as f:
        keys = list(f.keys())
        dtypes = {str(f.get_tensor(k).dtype) for k in keys}
    assert dtypes == {"torch.bfloat16"}, dtypes
    up = load(d, **{DTYPE_KW: torch.float32})
    assert next(up.parameters()).dtype == torch.float32
    note = (
        f"BF16 weights upcast to F32, F32 compute: AutoModelForCausalLM.from_pretrained(dir, "
        f"{DTYPE_KW}=torch.float32, attn_implementation='eager')"
    )
    meta, logits = write_parity(d, name, up, batch, texts, eot_id, note, tok_checks)
    # round trip: reload as saved (BF16) and compare with the in-memory BF16 model
    re = load(d, **{DTYPE_KW: torch.bfloat16})
    assert next(re.parameters()).dtype == torch.bfloat16
    err = max_diff(logits_of(re, batch), logits_of(bf16, batch))
    assert err <= ROUND_TRIP_TOL, f"{name}: round trip differs by {err}"
    # the upcast weights are exactly the BF16 ones
    for (k, a), (k2, b) in zip(up.named_parameters(), bf16.named_parameters()):
        assert k == k2 and torch.equal(a, b.float()), k
    bf16_logits_err = max_diff(logits_of(bf16, batch), logits)
    cast_buffers_err = max_diff(cast_buffers_logits, logits_of(bf16, batch))
    summary[name] = {
        **meta,
        "saved_keys": keys,
        "saved_dtypes": sorted(dtypes),
        "round_trip_err": err,
        "bf16_compute_vs_f32_compute": bf16_logits_err,
        "bf16_rope_buffers_cast_vs_f32": cast_buffers_err,
    }

    for name, s in summary.items():
        attn_bias = [k for k in s["saved_keys"] if k.endswith(".attn.bias") or k.endswith(".attn.masked_bias")]
        print(
            f"{name}: params {s['parameters']}, loss {s['loss']:.6f}, max|logit| {s['logits_max_abs']:.4f}, "
            f"saved {len(s['saved_keys'])} tensors {s['saved_dtypes']}, round trip {s['round_trip_err']:.2e}, "
            f"greedy {s['generate']['new_ids']}"
            + (f", attn.bias buffers saved: {len(attn_bias)}" if name.startswith("gpt2") else "")
            + (
                f", bf16-compute vs f32 max|d| {s['bf16_compute_vs_f32_compute']:.3e}"
                f", bf16 with bf16-cast inv_freq vs f32 inv_freq max|d| {s['bf16_rope_buffers_cast_vs_f32']:.3e}"
                if name.endswith("bf16")
                else ""
            )
        )
    for name in summary:
        with open(os.path.join(args.out, name, "config.json"), encoding="utf-8") as f:
            cfg = json.load(f)
        rope = {k: v for k, v in cfg.items() if "rope" in k}
        print(f"{name} config.json: transformers_version {cfg.get('transformers_version')}, "
              f"dtype field {cfg.get('dtype', cfg.get('torch_dtype'))!r}, rope fields {rope}")


if __name__ == "__main__":
    main()
