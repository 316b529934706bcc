"""einsum, composed from ops that already have derivatives: diagonal for a repeated index,
sum for an index only one operand has, and for each pair of operands one batched matmul
between a permute/reshape on each side, as torch's einsum does; so its grad_fn is what
torch's is (a view or a permute of the last product, a sum for a trace).

    >>> from gradserve import engine
    >>> a, b = engine.ones(2, 3), engine.ones(3, 4)
    >>> engine.einsum("ij,jk->ik", a, b).shape
    gradserve.Size([2, 4])
    >>> engine.einsum("ii", engine.eye(3)).item()
    3.0
"""

from __future__ import annotations

import math

from ..core.errors import InvalidArgumentError


def _parse(equation: str, operands) -> tuple[list[list[str]], list[str]]:
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(operands):
        raise InvalidArgumentError(
            "einsum(): more operands were provided than specified in the equation"
            if len(operands) > len(terms) else
            "einsum(): fewer operands were provided than specified in the equation")
    labels, ell_max = [], 0
    for term, x in zip(terms, operands, strict=True):
        named = term.replace("...", "")
        if not named.isalpha() and named:
            raise InvalidArgumentError(f"einsum(): invalid subscript given in equation {eq!r}")
        n_ell = x.dim() - len(named) if "..." in term else 0
        if n_ell < 0 or ("..." not in term and len(named) != x.dim()):
            raise InvalidArgumentError(
                f"einsum(): the number of subscripts in the equation ({len(named)}) does not "
                f"match the number of dimensions ({x.dim()}) for operand {len(labels)}"
                + ("" if "..." in term else " and no ellipsis was given"))
        ell_max = max(ell_max, n_ell)
        head, _, tail = term.partition("...")
        # ellipsis dims are named by their position from the right: "\x01", "\x02", ...
        labels.append(list(head) + [chr(n_ell - i) for i in range(n_ell)] + list(tail))
    ell = [chr(ell_max - i) for i in range(ell_max)]
    if arrow:
        head, _, tail = rhs.partition("...")
        out = list(head) + (ell if "..." in rhs else []) + list(tail)
    else:  # implicit output: the ellipsis, then every letter used once, alphabetically
        counts: dict[str, int] = {}
        for ls in labels:
            for c in ls:
                counts[c] = counts.get(c, 0) + 1
        out = ell + sorted(c for c, n in counts.items() if n == 1 and c.isalpha())
    for c in out:
        if not any(c in ls for ls in labels):
            raise InvalidArgumentError(
                f"einsum(): output subscript {c} does not appear in the equation for any input "
                "operand")
    return labels, out


def _diagonals(x, labels: list[str]):
    """Repeated labels within one operand select its diagonal (the label kept once, last)."""
    while len(set(labels)) != len(labels):
        c = next(c for c in labels if labels.count(c) > 1)
        i = labels.index(c)
        j = labels.index(c, i + 1)
        x = x.diagonal(0, i, j)
        labels = [lb for k, lb in enumerate(labels) if k not in (i, j)] + [c]
    return x, labels


def _sum_out(x, labels: list[str], keep: set[str]):
    drop = [i for i, c in enumerate(labels) if c not in keep]
    if not drop:
        return x, labels
    return x.sum(tuple(drop)), [c for c in labels if c in keep]


def _align(x, lx: list[str], target: list[str]):
    """x with its dims in `target`'s order, a size-1 dim for each label it lacks."""
    x = x.permute([lx.index(c) for c in target if c in lx])
    for i, c in enumerate(target):
        if c not in lx:
            x = x.unsqueeze(i)
    return x


def _sizes(pairs) -> dict[str, int]:
    size: dict[str, int] = {}
    for x, ls in pairs:
        for c, n in zip(ls, x.shape, strict=True):
            if size.get(c, 1) not in (1, n) and n != 1:
                raise InvalidArgumentError(
                    f"einsum(): operands do not broadcast with remapped shapes (original->"
                    f"remapped): {[list(x.shape) for x, _ in pairs]}")
            size[c] = max(size.get(c, 1), n)
    return size


def _contract(a, la, b, lb, keep: set[str], order: list[str]):
    """a and b with the labels not in `keep` summed out; the result's labels follow
    `order`. Without labels to sum the product is a broadcast multiply (as torch's)."""
    summed = [c for c in la if c in lb and c not in keep]
    if not summed:
        target = [c for c in order if c in la or c in lb]
        return _align(a, la, target) * _align(b, lb, target), target
    batch = [c for c in order if c in la and c in lb and c in keep]
    left = [c for c in order if c in la and c not in lb]
    right = [c for c in order if c in lb and c not in la]
    size = _sizes([(a, la), (b, lb)])
    a = a.permute([la.index(c) for c in batch + left + summed])
    b = b.permute([lb.index(c) for c in batch + summed + right])
    a = a.expand([size[c] for c in batch + left + summed])  # size-1 dims broadcast
    b = b.expand([size[c] for c in batch + summed + right])
    nb = [size[c] for c in batch]
    m, k, n = (math.prod(size[c] for c in g) for g in (left, summed, right))
    prod = a.reshape(math.prod(nb), m, k) @ b.reshape(math.prod(nb), k, n)
    return prod.view(nb + [size[c] for c in left + right]), batch + left + right


def einsum(equation: str, *operands):
    """Sum of products over the indices the equation names (torch.einsum), including
    "..." for broadcast dims and repeated indices for diagonals."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    if not operands:
        raise InvalidArgumentError("einsum(): must provide at least one operand")
    labels, out = _parse(equation, operands)
    xs = [_diagonals(x, ls) for x, ls in zip(operands, labels, strict=True)]
    order = out + [c for ls in labels for c in dict.fromkeys(ls) if c not in out]
    if len(xs) == 1:  # torch permutes (even to the same order), then sums what is left over
        x, lx = xs[0]
        x = x.permute([lx.index(c) for c in order if c in lx])
        extra = tuple(range(len(out), len(lx)))
        return x.sum(extra) if extra else x
    x, lx = xs[0]
    for k in range(1, len(xs)):
        later = {c for _, ls in xs[k + 1:] for c in ls}
        keep = set(out) | later
        y, ly = xs[k]
        # a label only one side has and nothing later needs is summed out first
        x, lx = _sum_out(x, lx, keep | set(ly))
        y, ly = _sum_out(y, ly, keep | set(lx))
        x, lx = _contract(x, lx, y, ly, keep, order)
    if lx != out:  # as torch's, the result ends with a view (of a contiguous copy)
        x = x.permute([lx.index(c) for c in out]).contiguous()
        x = x.view(x.shape)
    return x
