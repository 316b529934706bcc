"""LBFGS: torch.optim.LBFGS, with its strong-Wolfe line search.

The vectors (flat gradient, directions, the history's y and s pairs) are tensors where the
parameters live; the history's scalars (1/ys, the two-loop coefficients, H_diag) stay
tensors there too, so the two-loop recursion is buffered ops. What torch compares in Python
is fetched, a few scalars at a time in one wait: per iteration about three waits (the
curvature ys, the slope g.d with the first step's size, the closure's loss with the
stopping tests), and one per function evaluation of the line search (loss and g_new.d
together), besides the closure's own.
"""

from __future__ import annotations

import math

from gradserve.engine import AutogradMeta, cat, enable_grad, no_grad, stack

from ._optimizer import Optimizer


def _fetch(*values) -> list[float]:
    """Python floats of 0-dim tensors (numbers pass through), with one wait for them all."""
    tensors = [v for v in values if isinstance(v, AutogradMeta)]
    if not tensors:
        return [float(v) for v in values]
    fetched = iter(stack([t.detach().reshape(()).double() for t in tensors]).tolist())
    return [next(fetched) if isinstance(v, AutogradMeta) else float(v) for v in values]


def _dot(a, b):
    # the vectors' inner product, as sum(a * b) (torch's dot sums in another order: the
    # last bits may differ)
    return (a * b).sum()


def _cubic_interpolate(x1, f1, g1, x2, f2, g2, bounds=None) -> float:
    # the minimiser of the cubic through two points with their slopes (torch's, on floats)
    if bounds is not None:
        xmin_bound, xmax_bound = bounds
    else:
        xmin_bound, xmax_bound = (x1, x2) if x1 <= x2 else (x2, x1)
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1 ** 2 - g1 * g2
    if d2_square >= 0:
        d2 = math.sqrt(d2_square)
        if x1 <= x2:
            min_pos = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
        else:
            min_pos = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
        return min(max(min_pos, xmin_bound), xmax_bound)
    return (xmin_bound + xmax_bound) / 2.0


def _strong_wolfe(obj_func, x, t, d, d_norm, f, g, gtd, c1=1e-4, c2=0.9,
                  tolerance_change=1e-9, max_ls=25):
    """torch's `_strong_wolfe`: bracket, then zoom with cubic interpolation. `obj_func(x, t,
    d)` returns (loss, flat grad, grad . d) with the scalars as floats."""
    g = g.clone()
    f_new, g_new, gtd_new = obj_func(x, t, d)
    ls_func_evals = 1
    t_prev, f_prev, g_prev, gtd_prev = 0, f, g, gtd
    done = False
    ls_iter = 0
    bracket = bracket_f = bracket_g = bracket_gtd = None
    while ls_iter < max_ls:
        if f_new > (f + c1 * t * gtd) or (ls_iter > 1 and f_new >= f_prev):
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g, bracket_gtd = [g_prev, g_new.clone()], [gtd_prev, gtd_new]
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket, bracket_f, bracket_g = [t], [f_new], [g_new]
            done = True
            break
        if gtd_new >= 0:
            bracket, bracket_f = [t_prev, t], [f_prev, f_new]
            bracket_g, bracket_gtd = [g_prev, g_new.clone()], [gtd_prev, gtd_new]
            break
        min_step = t + 0.01 * (t - t_prev)
        max_step = t * 10
        tmp = t
        t = _cubic_interpolate(t_prev, f_prev, gtd_prev, t, f_new, gtd_new,
                               bounds=(min_step, max_step))
        t_prev, f_prev, g_prev, gtd_prev = tmp, f_new, g_new.clone(), gtd_new
        f_new, g_new, gtd_new = obj_func(x, t, d)
        ls_func_evals += 1
        ls_iter += 1
    if ls_iter == max_ls:
        bracket, bracket_f, bracket_g = [0, t], [f, f_new], [g, g_new]
    insuf_progress = False
    low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[-1] else (1, 0)
    while not done and ls_iter < max_ls:
        if abs(bracket[1] - bracket[0]) * d_norm < tolerance_change:
            break
        t = _cubic_interpolate(bracket[0], bracket_f[0], bracket_gtd[0], bracket[1],
                               bracket_f[1], bracket_gtd[1])
        eps = 0.1 * (max(bracket) - min(bracket))
        if min(max(bracket) - t, t - min(bracket)) < eps:
            if insuf_progress or t >= max(bracket) or t <= min(bracket):
                if abs(t - max(bracket)) < abs(t - min(bracket)):
                    t = max(bracket) - eps
                else:
                    t = min(bracket) + eps
                insuf_progress = False
            else:
                insuf_progress = True
        else:
            insuf_progress = False
        f_new, g_new, gtd_new = obj_func(x, t, d)
        ls_func_evals += 1
        ls_iter += 1
        if f_new > (f + c1 * t * gtd) or f_new >= bracket_f[low_pos]:
            bracket[high_pos], bracket_f[high_pos] = t, f_new
            bracket_g[high_pos], bracket_gtd[high_pos] = g_new.clone(), gtd_new
            low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[high_pos] - bracket[low_pos]) >= 0:
                bracket[high_pos], bracket_f[high_pos] = bracket[low_pos], bracket_f[low_pos]
                bracket_g[high_pos] = bracket_g[low_pos]
                bracket_gtd[high_pos] = bracket_gtd[low_pos]
            bracket[low_pos], bracket_f[low_pos] = t, f_new
            bracket_g[low_pos], bracket_gtd[low_pos] = g_new.clone(), gtd_new
    return bracket_f[low_pos], bracket_g[low_pos], bracket[low_pos], ls_func_evals


class LBFGS(Optimizer):
    """torch.optim.LBFGS: `step(closure)` runs up to `max_iter` quasi-Newton iterations,
    calling `closure()` (which zeroes the grads, computes the loss, calls backward and
    returns it) as often as it needs; `line_search_fn="strong_wolfe"` or None (fixed `lr`).

    >>> opt = optim.LBFGS(model.parameters(), line_search_fn="strong_wolfe")
    >>> def closure():
    ...     opt.zero_grad(); loss = model(x).pow(2).mean(); loss.backward(); return loss
    >>> opt.step(closure)
    """

    def __init__(self, params, lr: float = 1, max_iter: int = 20, max_eval: int | None = None,
                 tolerance_grad: float = 1e-7, tolerance_change: float = 1e-9,
                 history_size: int = 100, line_search_fn: str | None = None) -> None:
        if not 0.0 <= lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if max_eval is None:
            max_eval = max_iter * 5 // 4
        super().__init__(params, dict(lr=lr, max_iter=max_iter, max_eval=max_eval,
                                      tolerance_grad=tolerance_grad,
                                      tolerance_change=tolerance_change,
                                      history_size=history_size, line_search_fn=line_search_fn))
        if len(self.param_groups) != 1:
            raise ValueError("LBFGS doesn't support per-parameter options (parameter groups)")
        self._params = self.param_groups[0]["params"]

    def _gather_flat_grad(self):
        return cat([p.new_zeros(p.numel()) if p.grad is None else p.grad.reshape(-1)
                    for p in self._params], 0)

    def _add_grad(self, step_size, update) -> None:
        offset = 0
        for p in self._params:
            numel = p.numel()
            p.add_(update[offset:offset + numel].view_as(p), alpha=step_size)
            offset += numel

    def _directional_evaluate(self, closure, x, t, d):
        self._add_grad(t, d)
        loss = closure()
        flat_grad = self._gather_flat_grad()
        loss, gtd = _fetch(loss, _dot(flat_grad, d))
        for p, pdata in zip(self._params, x, strict=True):
            p.copy_(pdata)
        return loss, flat_grad, gtd

    def step(self, closure):
        """Run the iterations; returns the loss `closure` gave first (torch's).

        >>> opt.step(closure)
        """
        with no_grad():
            return self._step(closure)

    def _step(self, closure):
        group = self.param_groups[0]
        lr, max_iter, max_eval = group["lr"], group["max_iter"], group["max_eval"]
        tolerance_grad, tolerance_change = group["tolerance_grad"], group["tolerance_change"]
        line_search_fn, history_size = group["line_search_fn"], group["history_size"]

        def evaluate():
            with enable_grad():
                return closure()

        state = self.state.setdefault(self._params[0], {})
        state.setdefault("func_evals", 0)
        state.setdefault("n_iter", 0)
        orig_loss = evaluate()
        flat_grad = self._gather_flat_grad()
        loss, grad_max = _fetch(orig_loss, flat_grad.abs().max())
        current_evals = 1
        state["func_evals"] += 1
        if grad_max <= tolerance_grad:
            return orig_loss
        d, t = state.get("d"), state.get("t")
        old_dirs, old_stps, ro = state.get("old_dirs"), state.get("old_stps"), state.get("ro")
        h_diag, prev_flat_grad = state.get("H_diag"), state.get("prev_flat_grad")
        prev_loss = state.get("prev_loss")
        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            state["n_iter"] += 1
            if state["n_iter"] == 1:
                d = flat_grad.neg()
                old_dirs, old_stps, ro, h_diag = [], [], [], 1
            else:
                d = self._direction(state, flat_grad, prev_flat_grad, d, t, old_dirs,
                                    old_stps, ro, h_diag, history_size)
                h_diag = state["H_diag"]
            if prev_flat_grad is None:
                prev_flat_grad = flat_grad.clone()
            else:
                prev_flat_grad.copy_(flat_grad)
            prev_loss = loss
            if state["n_iter"] == 1:
                gtd, grad_sum, d_norm = _fetch(_dot(flat_grad, d), flat_grad.abs().sum(),
                                               d.abs().max())
                t = min(1.0, 1.0 / grad_sum) * lr
            else:
                gtd, d_norm = _fetch(_dot(flat_grad, d), d.abs().max())
                t = lr
            if gtd > -tolerance_change:
                break
            ls_func_evals = 0
            if line_search_fn is not None:
                if line_search_fn != "strong_wolfe":
                    raise RuntimeError("only 'strong_wolfe' is supported")
                x_init = [p.clone() for p in self._params]

                def obj_func(x, step, direction):
                    return self._directional_evaluate(evaluate, x, step, direction)

                loss, flat_grad, t, ls_func_evals = _strong_wolfe(
                    obj_func, x_init, t, d, d_norm, loss, flat_grad, gtd,
                    max_ls=max_eval - current_evals)
                self._add_grad(t, d)
                grad_max, step_max = _fetch(flat_grad.abs().max(), d.mul(t).abs().max())
            else:
                self._add_grad(t, d)
                grad_max = step_max = None
                if n_iter != max_iter:
                    loss = evaluate()
                    flat_grad = self._gather_flat_grad()
                    loss, grad_max, step_max = _fetch(loss, flat_grad.abs().max(),
                                                      d.mul(t).abs().max())
                    ls_func_evals = 1
            current_evals += ls_func_evals
            state["func_evals"] += ls_func_evals
            if n_iter == max_iter or current_evals >= max_eval:
                break
            if grad_max is not None and grad_max <= tolerance_grad:
                break
            if step_max is None:
                (step_max,) = _fetch(d.mul(t).abs().max())
            if step_max <= tolerance_change:
                break
            if abs(loss - prev_loss) < tolerance_change:
                break
        state.update(d=d, t=t, old_dirs=old_dirs, old_stps=old_stps, ro=ro, H_diag=h_diag,
                     prev_flat_grad=prev_flat_grad, prev_loss=prev_loss)
        return orig_loss

    @staticmethod
    def _direction(state, flat_grad, prev_flat_grad, d, t, old_dirs, old_stps, ro, h_diag,
                   history_size):
        """The L-BFGS direction: update the (y, s) history when the curvature ys is
        positive enough (one wait for ys), then the two-loop recursion in tensor ops."""
        y = flat_grad.sub(prev_flat_grad)
        s = d.mul(t)
        ys = _dot(y, s)
        (ys_value,) = _fetch(ys)
        if ys_value > 1e-10:
            if len(old_dirs) == history_size:
                old_dirs.pop(0)
                old_stps.pop(0)
                ro.pop(0)
            old_dirs.append(y)
            old_stps.append(s)
            ro.append(1.0 / ys)
            h_diag = ys / _dot(y, y)
        state["H_diag"] = h_diag
        num_old = len(old_dirs)
        al = state.setdefault("al", [None] * history_size)
        q = flat_grad.neg()
        for i in range(num_old - 1, -1, -1):
            al[i] = _dot(old_stps[i], q) * ro[i]
            q.sub_(old_dirs[i] * al[i])
        r = q * h_diag
        for i in range(num_old):
            be_i = _dot(old_dirs[i], r) * ro[i]
            r.add_(old_stps[i] * (al[i] - be_i))
        return r
