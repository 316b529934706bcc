"""Recurrent cells unrolled by hand: an LSTMCell and a GRUCell read a sequence step by
step (as a seq2seq decoder does), an nn.RNN reads it whole; RAdam trains all three heads."""

import torch
import torch.nn as nn

steps = 12
t = torch.linspace(0, 3.0, steps + 1)
series = torch.stack([torch.sin(2 * t), torch.cos(3 * t)], dim=1)  # (steps + 1, 2)
inputs, targets = series[:-1].unsqueeze(1), series[1:].unsqueeze(1)  # (steps, 1, 2)


class Readers(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTMCell(2, 6)
        self.gru = nn.GRUCell(2, 6)
        self.rnn = nn.RNN(2, 6, num_layers=2)
        self.head = nn.Linear(18, 2)

    def forward(self, x):
        h = c = g = None
        outs = []
        for step in range(x.shape[0]):
            h, c = self.lstm(x[step], None if h is None else (h, c))
            g = self.gru(x[step], g)
            outs.append(torch.cat([h, g], dim=1))
        whole, _ = self.rnn(x)
        return self.head(torch.cat([torch.stack(outs), whole], dim=2))


model = Readers()
with torch.no_grad():  # a fixed start, so every run prints the same
    for i, p in enumerate(model.parameters()):
        p.copy_(torch.linspace(-0.4, 0.4, p.numel()).reshape(p.shape).cos() * 0.3 - 0.05 * i)

opt = torch.optim.RAdam(model.parameters(), lr=0.02)
for step in range(10):
    opt.zero_grad()
    loss = nn.functional.mse_loss(model(inputs), targets)
    loss.backward()
    opt.step()
    if step % 3 == 0:
        print(f"step {step}  loss {loss.item():.5f}")

print("hidden size:", model.lstm.hidden_size, "parameters:",
      sum(p.numel() for p in model.parameters()))
print("last prediction:", model(inputs)[-1, 0].detach())
