"""A cubic fitted by hand-written gradient descent (no optimizer object), with a gradient
hook that records each step's gradient norm."""

import torch

x = torch.linspace(-2.0, 2.5, 50)
y = 0.5 * x ** 3 - x + 0.8 + 0.3 * torch.sin(5 * x)
features = torch.stack([x ** k for k in range(4)], dim=1)

w = torch.zeros(4, requires_grad=True)
norms = []
w.register_hook(lambda g: norms.append(g.norm().item()))

lr = 0.02
for step in range(81):
    loss = ((features @ w - y) ** 2).mean()
    loss.backward()
    with torch.no_grad():
        w -= lr * w.grad
        w.grad.zero_()
    if step % 20 == 0:
        print(f"step {step:3d}  loss {loss.item():.4f}")

print("w:", w)
print(f"largest gradient norm {max(norms):.3f} at step {norms.index(max(norms))}")
residual = features @ w.detach() - y
print("worst points:", residual.abs().topk(3).indices.tolist())
