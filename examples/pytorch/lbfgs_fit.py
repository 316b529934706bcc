"""Fitting a damped oscillation's three parameters with L-BFGS and a strong-Wolfe line
search: the closure re-evaluates the loss as often as the line search asks."""

import torch

t = torch.linspace(0, 4, 60, dtype=torch.float64)
observed = 1.5 * torch.exp(-0.4 * t) * torch.cos(2.2 * t)

params = torch.tensor([1.0, 0.1, 2.0], dtype=torch.float64, requires_grad=True)
opt = torch.optim.LBFGS([params], lr=1, max_iter=3, history_size=5,
                        line_search_fn="strong_wolfe")
calls = []


def closure():
    opt.zero_grad()
    amplitude, decay, frequency = params
    model = amplitude * torch.exp(-decay * t) * torch.cos(frequency * t)
    loss = ((model - observed) ** 2).mean()
    loss.backward()
    calls.append(loss.item())
    return loss


for step in range(5):
    loss = opt.step(closure)
    print(f"step {step}  loss {loss.item():.6f}  evaluations so far {len(calls)}")

print("fitted amplitude, decay, frequency:", [round(v, 4) for v in params.tolist()])
