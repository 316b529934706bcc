"""A convolutional autoencoder: Conv2d down, ConvTranspose2d back up, trained with Adam to
reconstruct small images of blobs; also a U-Net-style skip through pixel_shuffle."""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

n = 16
grid = torch.linspace(-1, 1, 12)
yy, xx = grid.reshape(1, 12, 1), grid.reshape(1, 1, 12)
cx = torch.linspace(-0.5, 0.5, n).reshape(n, 1, 1)
cy = torch.linspace(0.4, -0.4, n).reshape(n, 1, 1)
images = torch.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 0.1).unsqueeze(1)  # (16, 1, 12, 12)


class AutoEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.down = nn.Conv2d(1, 8, 3, stride=2, padding=1)        # 12 -> 6
        self.squeeze = nn.Conv2d(8, 4, 3, stride=2, padding=1)     # 6 -> 3
        self.up = nn.ConvTranspose2d(4, 8, 4, stride=2, padding=1)  # 3 -> 6
        self.out = nn.ConvTranspose2d(8, 4, 3, stride=2, padding=1, output_padding=1)  # 12
        self.skip = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        h = F.relu(self.down(x))
        z = torch.tanh(self.squeeze(h))
        u = F.relu(self.up(z)) + h
        y = self.out(u)  # (N, 4, 12, 12)
        s = F.pixel_shuffle(self.skip(h), 2)  # (N, 1, 12, 12)
        return torch.sigmoid(y.mean(1, keepdim=True) + s)


model = AutoEncoder()
with torch.no_grad():  # a fixed start, so every run prints the same
    for i, p in enumerate(model.parameters()):
        p.copy_(torch.linspace(-0.5, 0.5, p.numel()).reshape(p.shape).cos()
                * (-1) ** i * 0.6 / math.sqrt(p[0].numel()))

opt = torch.optim.Adam(model.parameters(), lr=0.02)
for step in range(40):
    opt.zero_grad()
    loss = F.mse_loss(model(images), images)
    loss.backward()
    opt.step()
    if step % 10 == 0:
        print(f"step {step:2d}  loss {loss.item():.5f}")

with torch.no_grad():
    recon = model(images)
    print(f"final loss {F.mse_loss(recon, images).item():.5f}")
    print("peak of image 0 at", divmod(images[0, 0].argmax().item(), 12),
          "reconstructed at", divmod(recon[0, 0].argmax().item(), 12))
print(model)
