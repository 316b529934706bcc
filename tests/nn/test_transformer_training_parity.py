"""nn.Transformer trained for several steps against torch in float64 (skipped without torch):
a single forward/backward agreeing is not enough, because a gradient wrong only in some case
(a mask, norm_first, batch_first, the decoder's memory attention, padding) or an optimizer
detail shows as drift over steps. Torch's weights are loaded; every step's loss and every
parameter after the last step must agree to rounding."""

from __future__ import annotations

import gradserve as gs
import numpy as np
import pytest
import torch  # the oracle: in the test extra, so these always run in CI
from gradserve import engine

V, D, S, T, N = 11, 16, 7, 6, 3


def _model(lib, **kw):
    nn = lib.nn

    class Seq2Seq(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(V, D, padding_idx=0)
            self.tr = nn.Transformer(D, 2, 2, 2, 32, dropout=0.0, **kw)
            self.out = nn.Linear(D, V)

        def forward(self, src, tgt, mask):
            pad = (src == 0).t()  # (N, S) in either layout
            if kw.get("batch_first"):
                src, tgt = src.t(), tgt.t()
            out = self.tr(self.emb(src) * 4.0, self.emb(tgt) * 4.0, tgt_mask=mask,
                          src_key_padding_mask=pad, memory_key_padding_mask=pad)
            return self.out(out.transpose(0, 1) if kw.get("batch_first") else out)

    return Seq2Seq()


@pytest.mark.parametrize("kw", [{}, {"norm_first": True}, {"batch_first": True},
                                {"activation": "gelu"}], ids=str)
@pytest.mark.parametrize("optimizer", ["Adam", "SGD"])
def test_transformer_trains_as_torchs(kw, optimizer):
    torch.manual_seed(0)
    theirs = _model(torch, **kw).double()
    ours = _model(gs, **kw).to(engine.float64)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    src = torch.randint(0, V, (S, N))
    tgt = torch.randint(1, V, (T + 1, N))
    options = {"lr": 0.01} if optimizer == "Adam" else {"lr": 0.1, "momentum": 0.9}
    runs = []
    for lib, model in ((torch, theirs), (gs, ours)):
        s, t = (src, tgt) if lib is torch else (engine.tensor(src.numpy()),
                                                 engine.tensor(tgt.numpy()))
        mask = lib.nn.Transformer.generate_square_subsequent_mask(T, dtype=lib.float64)
        opt = getattr(lib.optim, optimizer)(model.parameters(), **options)
        losses = []
        for _ in range(8):
            opt.zero_grad()
            logits = model(s, t[:-1], mask)
            loss = lib.nn.functional.cross_entropy(logits.reshape(-1, V), t[1:].reshape(-1))
            loss.backward()
            lib.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            losses.append(loss.item())
        runs.append((losses, {k: np.asarray(p.detach().numpy()) for k, p in
                              model.named_parameters()}))
    (their_losses, their_params), (our_losses, our_params) = runs
    np.testing.assert_allclose(our_losses, their_losses, rtol=1e-12)
    assert list(our_params) == list(their_params)
    for name, p in their_params.items():
        # the key projection's bias has a zero gradient up to rounding, which Adam scales
        # up by 1/eps: equal to 1e-8 there, to rounding elsewhere
        np.testing.assert_allclose(our_params[name], p, atol=1e-8, rtol=0, err_msg=name)
