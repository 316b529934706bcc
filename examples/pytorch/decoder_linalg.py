"""A tiny image decoder (ConvTranspose2d, bilinear Upsample, PixelShuffle) fitted by a few
steps of Adam, then torch.linalg on its weights: least squares, a solve, QR, singular
values, an eigendecomposition and a log-determinant, each with a gradient. Deterministic
weights (no random numbers), so every library prints the same."""

import torch
import torch.nn as nn
import torch.nn.functional as F


def ramp(*shape, lo=-0.5, hi=0.5):
    n = 1
    for s in shape:
        n *= s
    return torch.linspace(lo, hi, n, dtype=torch.float64).reshape(shape)


decoder = nn.Sequential(
    nn.ConvTranspose2d(4, 8, 3, stride=2, padding=1, output_padding=1),  # 3x3 -> 6x6
    nn.Tanh(),
    nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),  # -> 12x12
    nn.Conv2d(8, 4, 3, padding=1),
    nn.PixelShuffle(2),  # 4 channels -> 1 channel, 24x24
).double()
with torch.no_grad():
    for i, p in enumerate(decoder.parameters()):
        p.copy_(ramp(*p.shape, lo=-0.3 + 0.05 * i, hi=0.3 - 0.02 * i))

code = ramp(2, 4, 3, 3, lo=-1.0, hi=1.0)
target = torch.sin(ramp(2, 1, 24, 24, lo=0.0, hi=6.0))
opt = torch.optim.Adam(decoder.parameters(), lr=0.01)
for step in range(5):
    opt.zero_grad()
    loss = F.mse_loss(decoder(code), target)
    loss.backward()
    opt.step()
    print(f"step {step} loss {loss.item():.6f}")

w = decoder[0].weight.detach().reshape(4, -1)  # (4, 72)
a = (w @ w.T + torch.eye(4, dtype=torch.float64)).requires_grad_()  # symmetric positive definite
b = ramp(4, 2)
x = torch.linalg.solve(a, b)
print("solve:", x)
sol = torch.linalg.lstsq(w.T, ramp(72, 1)).solution
print("lstsq solution:", sol.squeeze(1))
q, r = torch.linalg.qr(w.T)
print("qr R diagonal:", r.diagonal().abs())
print("singular values:", torch.linalg.svdvals(w))
values, vectors = torch.linalg.eigh(a)
print("eigenvalues:", values)
sign, logdet = torch.linalg.slogdet(a)
total = logdet + x.square().sum() + values.max() + torch.linalg.matrix_norm(a, "nuc")
total.backward()
print(f"total {total.item():.6f}")
print("d total / d a:", a.grad)
print("rank:", torch.linalg.matrix_rank(w).item(), "det:", f"{torch.linalg.det(a).item():.4f}")
