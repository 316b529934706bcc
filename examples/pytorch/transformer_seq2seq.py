"""An encoder-decoder nn.Transformer learning to reverse short digit sequences: token and
position embeddings, a causal target mask, a padding mask, teacher forcing with
cross-entropy, Adam with gradient clipping, then greedy decoding in eval mode. Seeded, so
the data and the initial weights are the same on every run.

In float64: a key projection's bias cannot change attention (softmax ignores a constant added
to a row), so its gradient is zero up to rounding, and Adam divides that rounding noise by its
own size: in float32 that bias takes steps of random sign, and two correct libraries (or two
builds of one) drift apart in the fourth digit after twenty steps."""

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(0)
VOCAB, BOS, PAD, LENGTH, D = 12, 10, 11, 6, 32


class Seq2Seq(nn.Module):
    def __init__(self):
        super().__init__()
        self.tokens = nn.Embedding(VOCAB, D, padding_idx=PAD)
        self.positions = nn.Embedding(LENGTH + 1, D)
        self.transformer = nn.Transformer(d_model=D, nhead=4, num_encoder_layers=2,
                                          num_decoder_layers=2, dim_feedforward=64,
                                          dropout=0.0, batch_first=True)
        self.head = nn.Linear(D, VOCAB)

    def embed(self, x):
        return self.tokens(x) * D ** 0.5 + self.positions(torch.arange(x.shape[1]))

    def forward(self, src, tgt):
        mask = nn.Transformer.generate_square_subsequent_mask(tgt.shape[1], dtype=torch.float64)
        out = self.transformer(self.embed(src), self.embed(tgt), tgt_mask=mask,
                               src_key_padding_mask=src == PAD,
                               memory_key_padding_mask=src == PAD)
        return self.head(out)


def batch(n):
    src = torch.randint(0, 10, (n, LENGTH))
    src[n // 2:, -1] = PAD  # half the sequences are one shorter, padded at the end
    tgt = src.flip(1)
    tgt[n // 2:] = torch.cat([src[n // 2:, :-1].flip(1), src[n // 2:, -1:]], 1)
    return src, torch.cat([torch.full((n, 1), BOS), tgt], 1)


model = Seq2Seq().double()
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
for step in range(30):
    src, tgt = batch(16)
    logits = model(src, tgt[:, :-1])
    loss = F.cross_entropy(logits.reshape(-1, VOCAB), tgt[:, 1:].reshape(-1),
                           ignore_index=PAD)
    opt.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    if step % 5 == 4:
        print(f"step {step + 1}  loss {loss.item():.4f}")

model.eval()
src, tgt = batch(4)
with torch.no_grad():
    out = torch.full((4, 1), BOS)
    for _ in range(LENGTH):
        next_token = model(src, out)[:, -1].argmax(-1, keepdim=True)
        out = torch.cat([out, next_token], 1)
print("source:   ", src[0].tolist())
print("decoded:  ", out[0, 1:].tolist())
accuracy = (out[:, 1:] == tgt[:, 1:]).float().mean()
print(f"token accuracy {accuracy.item():.3f}")
