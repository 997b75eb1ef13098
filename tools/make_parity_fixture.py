#!/usr/bin/env python3
"""Writes fixtures/parity_tiny.json: a small SuccuLM built by the seed's own PyTorch classes
(re-typed below exactly as in the article), in our checkpoint format, with inputs, targets (PAD
included), logits, the loss, every parameter's gradient, and the parameters after two Adam steps.

Needs torch (not needed by the tests). Run from the crate root:
    python3 tools/make_parity_fixture.py
"""
import json

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim


# ----- The seed's classes, verbatim (verbose printing kept) -----
class PositionalEncoding(nn.Module):
    def __init__(self, d_model, max_len):
        super().__init__()
        pe = torch.zeros(max_len, d_model)
        position = torch.arange(0, max_len).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2) * (-np.log(10000.0) / d_model))
        pe[:, 0::2] = torch.sin(position * div_term)
        if d_model > 1:
            pe[:, 1::2] = torch.cos(position * div_term)
        self.register_buffer('pe', pe)
    def forward(self, x):
        return x + self.pe[:x.size(1)]


class Block(nn.Module):
    def __init__(self, d_model, ffn_expansion=1, n_attn_heads=1, verbose=False):
        super().__init__()
        assert d_model % n_attn_heads == 0, (
            f"d_model ({d_model}) must be divisible by n_attn_heads ({n_attn_heads})"
        )
        self.n_attn_heads = n_attn_heads
        self.d_head = d_model // n_attn_heads

        self.ln1 = nn.LayerNorm(d_model)
        self.q_linears = nn.ModuleList([nn.Linear(d_model, self.d_head, bias=True) for _ in range(n_attn_heads)])
        self.k_linears = nn.ModuleList([nn.Linear(d_model, self.d_head, bias=True) for _ in range(n_attn_heads)])
        self.v_linears = nn.ModuleList([nn.Linear(d_model, self.d_head, bias=True) for _ in range(n_attn_heads)])
        self.attn_out = nn.Linear(d_model, d_model, bias=True)

        self.ln2 = nn.LayerNorm(d_model)
        hidden_dim = d_model * ffn_expansion
        self.ffn = nn.Sequential(
            nn.Linear(d_model, hidden_dim, bias=True),
            nn.ReLU(),
            nn.Linear(hidden_dim, d_model, bias=True)
        )
        self.d_model = d_model
        self.set_verbose(verbose)

    def set_verbose(self, verbose):
        self.verbose = verbose

    def forward(self, x, mask=None, return_attn=False, return_cossim=False):
        attn_in = self.ln1(x)

        head_outputs = []
        head_attns = []
        for q_lin, k_lin, v_lin in zip(self.q_linears, self.k_linears, self.v_linears):
            Q = q_lin(attn_in)
            K = k_lin(attn_in)
            V = v_lin(attn_in)

            d_k = Q.size(-1)
            scores = torch.matmul(Q, K.transpose(-2, -1)) / np.sqrt(d_k)
            if mask is not None:
                scores = scores.masked_fill(mask, float('-inf'))

            attn = torch.softmax(scores, dim=-1)
            head_outputs.append(torch.matmul(attn, V))
            head_attns.append(attn)

        concat = torch.cat(head_outputs, dim=-1)
        attn_out = self.attn_out(concat)
        x1 = x + attn_out

        ffn_in = self.ln2(x1)
        ffn_out = self.ffn(ffn_in)

        x1_ = x1.detach().cpu()
        ffn_out_ = ffn_out.detach().cpu()
        norm_x = torch.linalg.vector_norm(x1_, ord=2, dim=-1)
        norm_ffn = torch.linalg.vector_norm(ffn_out_, ord=2, dim=-1)
        sim = F.cosine_similarity(x1_, x1_ + ffn_out_, dim=-1)

        if self.verbose:
            print(
                f"[Layer DEBUG] "
                f"L2(x): {norm_x.mean().item():.4f}, "
                f"L2(ffn): {norm_ffn.mean().item():.4f} | "
                f"CosSim: {sim.mean().item():.4f}"
            )

        x2 = x1 + ffn_out

        if return_attn:
            if return_cossim:
                return x2, attn, sim.numpy().mean().item()
            return x2, attn
        if return_cossim:
            return x2, sim.numpy().mean().item()
        return x2


class SuccuLM(nn.Module):
    def __init__(self, vocab_size, d_model=32, max_len=16,
                 pad_idx=0, bos_idx=1, eos_idx=2, embed_weights=None,
                 n_layers=1, ffn_expansion=1, n_attn_heads=1, verbose=False):
        super().__init__()
        self.d_model = d_model
        self.cossim_list = []

        if embed_weights is not None:
            if isinstance(embed_weights, torch.Tensor):
                embed_weights = embed_weights.clone()
            elif isinstance(embed_weights, np.ndarray):
                embed_weights = embed_weights.copy()
            self.embed = nn.Embedding.from_pretrained(
                torch.tensor(embed_weights, dtype=torch.float32),
                freeze=False,
            )
        else:
            self.embed = nn.Embedding(vocab_size, d_model)

        self.pos_enc = PositionalEncoding(d_model, max_len)

        self.blocks = nn.ModuleList([
            Block(d_model, ffn_expansion=ffn_expansion, n_attn_heads=n_attn_heads)
            for _ in range(n_layers)
        ])

        self.ln_f = nn.LayerNorm(d_model)

        self.max_len = max_len
        self.attn_weights = None
        self.pad_idx = pad_idx
        self.bos_idx = bos_idx
        self.eos_idx = eos_idx

        self.set_verbose(verbose)

    def set_verbose(self, verbose):
        self.verbose = verbose
        for block in self.blocks:
            block.set_verbose(verbose)

    def forward(self, x, return_attn=False):
        x_seq = self.embed(x)
        x_seq = self.pos_enc(x_seq)

        seq_len = x.size(1)
        mask = torch.triu(torch.ones(seq_len, seq_len), diagonal=1).bool().to(x.device)

        attns = []
        for block in self.blocks:
            if return_attn:
                x_seq, attn = block(x_seq, mask=mask, return_attn=True)
                attns.append(attn)
            else:
                if self.verbose:
                    x_seq, cossim = block(x_seq, mask=mask, return_cossim=True)
                    self.cossim_list.append(cossim)
                else:
                    x_seq = block(x_seq, mask=mask)

        x_seq = self.ln_f(x_seq)

        logits = torch.matmul(x_seq, self.embed.weight.t())

        if return_attn:
            self.attn_weights = [a.detach().cpu().numpy() for a in attns[-1]]
            return logits, attns
        return logits
# ----- end of the seed's classes -----


def tensor_json(t):
    t = t.detach().contiguous()
    return {"shape": list(t.shape), "data": [float(v) for v in t.reshape(-1).tolist()]}


def state_dict_json(model):
    return {k: tensor_json(v) for k, v in model.state_dict().items()}


def main():
    torch.manual_seed(1234)
    cfg = dict(vocab_size=23, d_model=12, max_len=9, n_layers=2, ffn_expansion=2, n_attn_heads=3)
    model = SuccuLM(
        cfg["vocab_size"], d_model=cfg["d_model"], max_len=cfg["max_len"],
        n_layers=cfg["n_layers"], ffn_expansion=cfg["ffn_expansion"],
        n_attn_heads=cfg["n_attn_heads"],
    )
    words = ["<PAD>", "<BOS>", "<EOS>", "<UNK>"] + [f"w{i:02d}" for i in range(4, cfg["vocab_size"])]
    vocab = {w: i for i, w in enumerate(words)}
    checkpoint = {
        "format_version": 1,
        "profile": None,
        "config": cfg,
        "vocab": vocab,
        "state_dict": state_dict_json(model),
    }

    # Three rows: full length, and two padded (as the seed's dataset pads x and y).
    rows = [
        [1, 5, 9, 13, 17, 21, 4, 8, 12, 2],
        [1, 22, 7, 3, 2],
        [1, 6, 6, 10, 11, 14, 2],
    ]
    x, y = [], []
    for ids in rows:
        xi, yi = ids[:-1], ids[1:]
        xi = (xi + [0] * cfg["max_len"])[: cfg["max_len"]]
        yi = (yi + [0] * cfg["max_len"])[: cfg["max_len"]]
        x.append(xi)
        y.append(yi)
    xt = torch.tensor(x, dtype=torch.long)
    yt = torch.tensor(y, dtype=torch.long)
    V = cfg["vocab_size"]
    criterion = nn.CrossEntropyLoss(ignore_index=0)

    model.train()
    optimizer = optim.Adam(model.parameters(), lr=1e-3)
    optimizer.zero_grad()
    logits = model(xt)
    loss = criterion(logits.view(-1, V), yt.view(-1))
    loss.backward()
    grads = {n: tensor_json(p.grad) for n, p in model.named_parameters()}
    logits_json = tensor_json(logits)
    loss0 = loss.item()

    steps, losses = [], [loss0]
    optimizer.step()
    steps.append({n: tensor_json(p) for n, p in model.named_parameters()})
    optimizer.zero_grad()
    loss = criterion(model(xt).view(-1, V), yt.view(-1))
    losses.append(loss.item())
    loss.backward()
    optimizer.step()
    steps.append({n: tensor_json(p) for n, p in model.named_parameters()})

    fixture = {
        "about": "tools/make_parity_fixture.py: the seed's PyTorch SuccuLM on fixed weights",
        "torch_version": torch.__version__,
        "checkpoint": checkpoint,
        "x": x,
        "y": y,
        "logits": logits_json,
        "loss": loss0,
        "grads": grads,
        "adam": {"lr": 1e-3, "losses": losses, "params_after_step": steps},
    }
    with open("fixtures/parity_tiny.json", "w") as f:
        json.dump(fixture, f)
    print("wrote fixtures/parity_tiny.json", "loss", loss0)


if __name__ == "__main__":
    main()
