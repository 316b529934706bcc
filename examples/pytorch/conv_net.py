"""A small conv net telling horizontal from vertical bars, trained with SGD and momentum."""

import torch
import torch.nn as nn
import torch.nn.functional as F

n = 24
rows = torch.arange(8).reshape(1, 8, 1)
where = ((torch.arange(n) * 3) % 6 + 1).reshape(n, 1, 1)
horizontal = (rows == where).float().expand(n, 8, 8)
labels = torch.arange(n) % 2
images = torch.where(labels.reshape(n, 1, 1) == 0, horizontal,
                     horizontal.transpose(1, 2)).unsqueeze(1)
images = images + 0.05 * torch.linspace(-1, 1, 64).reshape(1, 1, 8, 8)  # no exact ties


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(4 * 4 * 4, 2)

    def forward(self, x):
        return self.fc(self.pool(F.relu(self.conv(x))).flatten(1))


net = Net()
with torch.no_grad():  # a fixed start, so every run prints the same
    for i, p in enumerate(net.parameters()):
        p.copy_(torch.linspace(-0.4, 0.4, p.numel()).reshape(p.shape).sin() * (-1) ** i)

opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
for epoch in range(16):
    opt.zero_grad()
    loss = F.cross_entropy(net(images), labels)
    loss.backward()
    opt.step()
    if epoch % 5 == 0:
        print(f"epoch {epoch:2d}  loss {loss.item():.4f}")

with torch.no_grad():
    accuracy = (net(images).argmax(1) == labels).float().mean()
print(f"accuracy {accuracy.item():.2f}")
print(net)
