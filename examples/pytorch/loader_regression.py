"""A small regression trained from a Dataset through a DataLoader: a custom map-style
dataset returning dicts, default collation into batches, a TensorDataset for validation,
NAdam with a warm-up then cosine restarts (SequentialLR)."""

import math

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset, TensorDataset


class Curve(Dataset):
    """Samples of y = sin(2x) + x / 2 at evenly spaced x, as dicts."""

    def __init__(self, n, lo, hi):
        self.xs = [lo + (hi - lo) * i / (n - 1) for i in range(n)]

    def __len__(self):
        return len(self.xs)

    def __getitem__(self, i):
        x = self.xs[i]
        return {"x": torch.tensor([x, x * x]), "y": math.sin(2 * x) + x / 2, "index": i}


train = DataLoader(Curve(48, -1.5, 1.5), batch_size=10, drop_last=True)
val_x = torch.linspace(-1.4, 1.4, 9)
val = TensorDataset(torch.stack([val_x, val_x * val_x], dim=1), torch.sin(2 * val_x) + val_x / 2)

model = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 1))
with torch.no_grad():  # a fixed start, so every run prints the same
    for p in model.parameters():
        p.copy_(torch.linspace(-0.5, 0.5, p.numel()).reshape(p.shape).sin())

opt = torch.optim.NAdam(model.parameters(), lr=0.05)
warmup = torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.2, total_iters=3)
restarts = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=4)
sched = torch.optim.lr_scheduler.SequentialLR(opt, [warmup, restarts], milestones=[3])
loss_fn = nn.MSELoss()
print("batches per epoch:", len(train), "first batch:", next(iter(train))["x"].shape)
for epoch in range(24):
    total = 0.0
    for batch in train:
        opt.zero_grad()
        loss = loss_fn(model(batch["x"]).squeeze(1), batch["y"].float())
        loss.backward()
        opt.step()
        total += loss.item()
    sched.step()
    if epoch % 6 == 5:
        print(f"epoch {epoch:2d}  train loss {total / len(train):.4f}  "
              f"lr {sched.get_last_lr()[0]:.4f}")

with torch.no_grad():
    errors = [(model(x).squeeze(1) - y).abs() for x, y in DataLoader(val, batch_size=4)]
print("validation max error:", round(torch.cat(errors).max().item(), 3))
