"""Heat along a rod: explicit finite differences with in-place updates through slices,
boundary writes and masks, and the gradient of the mean heat with respect to the
conductivity and the initial temperature."""

import torch

n = 32
x = torch.linspace(0.0, 1.0, n)
u0 = torch.exp(-((x - 0.3) ** 2) / 0.01).requires_grad_()  # a hot spot
kappa = torch.tensor(0.2, requires_grad=True)
source = torch.zeros(n)
source[20:24] = 1.5  # a heater: written through a slice

u = u0 * 1.0
heat = []
for _ in range(40):
    lap = torch.zeros_like(u)
    lap[1:-1] = u[2:] - 2 * u[1:-1] + u[:-2]  # the Laplacian, written into a slice
    u = u + kappa * lap + 0.01 * source
    u[0] = 0.0  # cold ends: in-place writes into a tensor that requires grad
    u[-1] = 0.0
    hot = u > 0.5
    u[hot] = u[hot] * 0.99  # a little loss where it is hot: mask read and write
    heat.append(u.sum())

mean_heat = torch.stack(heat).mean()
mean_heat.backward()
print(f"mean heat {mean_heat.item():.5f}")
print(f"d heat / d kappa {kappa.grad.item():+.5f}")
print("d heat / d u0 at every 8th cell:", u0.grad[::8])
print("warm cells at the end:", torch.nonzero(u > 0.3).flatten().tolist())
print("coolest interior cell:", u[1:-1].argmin().item() + 1, u.dtype, tuple(u.shape))
