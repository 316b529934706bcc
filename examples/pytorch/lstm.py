"""An LSTM learning to continue a sine wave, with Adam and gradient clipping."""

import torch
import torch.nn as nn

t = torch.linspace(0, 6.2832, 25)
wave = torch.sin(t)
inputs = wave[:-1].reshape(1, 24, 1)
targets = wave[1:].reshape(1, 24, 1)


class Predictor(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(1, 8, batch_first=True)
        self.head = nn.Linear(8, 1)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(out)


model = Predictor()
with torch.no_grad():  # a fixed start, so every run prints the same
    for p in model.parameters():
        p.copy_(torch.linspace(-0.3, 0.3, p.numel()).reshape(p.shape).cos() * 0.5 - 0.2)

opt = torch.optim.Adam(model.parameters(), lr=0.03)
loss_fn = nn.MSELoss()
for step in range(13):
    opt.zero_grad()
    loss = loss_fn(model(inputs), targets)
    loss.backward()
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    if step % 4 == 0:
        print(f"step {step:2d}  loss {loss.item():.5f}  grad norm {norm.item():.4f}")

with torch.no_grad():
    prediction = model(inputs)
print("next values:", prediction[0, -5:-2, 0])
print("targets:    ", targets[0, -5:-2, 0])
