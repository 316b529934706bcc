"""A small net fitted to data drawn from torch's generator: seeded, so the data, the default
initial weights, the mini-batch order and the sampled indices are the same on every run."""

import torch
import torch.nn as nn

torch.manual_seed(0)
x = torch.randn(256, 3)
true_w = torch.tensor([[1.5], [-2.0], [0.7]])
y = x @ true_w + 0.1 * torch.randn(256, 1)

model = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 1))
print("first weights:", model[0].weight[0])
opt = torch.optim.SGD(model.parameters(), lr=0.1)
loss_fn = nn.MSELoss()
for epoch in range(5):
    order = torch.randperm(256)
    for i in range(0, 256, 64):
        batch = order[i:i + 64]
        opt.zero_grad()
        loss = loss_fn(model(x[batch]), y[batch])
        loss.backward()
        opt.step()
    print(f"epoch {epoch}  loss {loss.item():.4f}")

g = torch.Generator().manual_seed(1)
print("dice:", torch.randint(1, 7, (8,), generator=g).tolist())
print("draws:", torch.multinomial(torch.tensor([0.2, 0.5, 0.3]), 6, replacement=True,
                                  generator=g).tolist())
noise = torch.empty(2, 3).uniform_(-1, 1)
print("noise:", noise)
