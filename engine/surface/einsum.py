"""einsum as aten's (torch 2.13, without opt_einsum), so its graph is torch's node for node.

Each operand is brought to one dim order, the output's labels then the contracted ones
(the ellipsis, then the letters, upper case first): a repeated label takes the diagonal
(`diagonal` then `movedim` back), a label it lacks is an `unsqueeze`d dim at the end, then
one `permute`. The operands are then contracted left to right, the result on the left: a
contracted label that only one of the pair has (and no later operand) is summed out of that
side at once (`sum(dims, keepdim=True)`); a label both have and nothing later needs is
contracted by `sumproduct_pair` (each side permuted and reshaped to 3-D, one `bmm`, a view
and a permute back), and with nothing to contract the pair is multiplied (the product laid
out as torch's TensorIterator lays it out, so later reshapes view or copy as torch's do).
The contracted dims, all of size one by then, are dropped by a view; a single operand sums
them instead.

    >>> from gradserve import engine
    >>> a, b = engine.ones(2, 3), engine.ones(3, 4)
    >>> engine.einsum("ij,jk->ik", a, b).shape
    gradserve.Size([2, 4])
    >>> engine.einsum("ii", engine.eye(3)).item()
    3.0
"""

from __future__ import annotations

from ..core.errors import InvalidArgumentError
from .compose import reshape

ELL = "..."


def _tokens(term: str) -> list[str]:
    head, dots, tail = term.partition(ELL)
    return list(head) + ([ELL] if dots else []) + list(tail)


def _parse(equation: str, operands):
    """(each operand's labels, with ELL for its ellipsis; the output's; the ellipsis's
    number of dims)."""
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(operands):
        raise InvalidArgumentError(
            "einsum(): more operands were provided than specified in the equation"
            if len(operands) > len(terms) else
            "einsum(): fewer operands were provided than specified in the equation")
    ops_labels, ell_num_dim = [], 0
    for i, (term, x) in enumerate(zip(terms, operands, strict=True)):
        named = term.replace(ELL, "")
        if named and not named.isalpha() or term.count(ELL) > 1 or "." in named:
            raise InvalidArgumentError(f"einsum(): invalid subscript given in equation {eq!r}")
        if ELL in term:
            if len(named) > x.dim():
                raise InvalidArgumentError(
                    f"einsum(): the number of subscripts in the equation ({len(named)}) is "
                    f"more than the number of dimensions ({x.dim()}) for operand {i}")
            ell_num_dim = max(ell_num_dim, x.dim() - len(named))
        elif len(named) != x.dim():
            raise InvalidArgumentError(
                f"einsum(): the number of subscripts in the equation ({len(named)}) does not "
                f"match the number of dimensions ({x.dim()}) for operand {i} and no ellipsis "
                "was given")
        ops_labels.append(_tokens(term))
    if arrow:
        out = _tokens(rhs)
        for c in out:
            if c == ELL:
                continue
            if not c.isalpha():
                raise InvalidArgumentError(
                    f"einsum(): invalid subscript given in equation {eq!r}")
            if out.count(c) > 1:
                raise InvalidArgumentError(
                    f"einsum(): output subscript {c} appears more than once in the output")
            if not any(c in ls for ls in ops_labels):
                raise InvalidArgumentError(
                    f"einsum(): output subscript {c} does not appear in the equation for any "
                    "input operand")
    else:  # the ellipsis, then each letter used once, in torch's label order (A-Z, a-z)
        counts: dict[str, int] = {}
        for ls in ops_labels:
            for c in ls:
                counts[c] = counts.get(c, 0) + 1
        out = [ELL] + sorted(c for c, n in counts.items() if n == 1 and c != ELL)
    return ops_labels, out, ell_num_dim


def _order(ops_labels, out, ell_num_dim):
    """Each label's position in the aligned dim order, the ellipsis's first position, and
    how many of those positions the output has."""
    ell = [("...", k) for k in range(ell_num_dim)]
    order: list = []
    for c in out:
        order += ell if c == ELL else [c]
    out_num_dim = len(order)
    if ELL not in out:
        order += ell
    order += sorted({c for ls in ops_labels for c in ls if c != ELL} - set(out))
    return {lab: k for k, lab in enumerate(order)}, len(order), out_num_dim


def _align(i, x, labels, index, perm_index, ell_num_dim, label_size, ell_sizes, dim_counts):
    permutation = [-1] * perm_index
    ndim = x.dim()
    dim = 0
    for s in labels:
        if s == ELL:
            covered = ndim - (len(labels) - 1)
            for j in range(ell_num_dim - covered, ell_num_dim):
                n = x.shape[dim]
                if n != 1:
                    if ell_sizes[j] not in (1, n):
                        raise InvalidArgumentError(
                            f"einsum(): dimension {dim} covered by ellipsis in operand {i}has "
                            f"size {n} which does not broadcast with previously seen ellipsis "
                            f"with size {ell_sizes[j]} for the respective dimension")
                    ell_sizes[j] = n
                    dim_counts[index["...", j]] += 1
                permutation[index["...", j]] = dim
                dim += 1
        elif permutation[index[s]] == -1:
            n = x.shape[dim]
            if n != 1:
                if label_size.get(s, 1) not in (1, n):
                    raise InvalidArgumentError(
                        f"einsum(): subscript {s} has size {n} for operand {i} which does not "
                        f"broadcast with previously seen size {label_size[s]}")
                label_size[s] = n
                dim_counts[index[s]] += 1
            permutation[index[s]] = dim
            dim += 1
        else:  # a repeated label: its diagonal, moved back to the first one's place
            prev = permutation[index[s]]
            if x.shape[dim] != x.shape[prev]:
                raise InvalidArgumentError(
                    f"einsum(): subscript {s} is repeated for operand {i} but the sizes don't "
                    f"match, {x.shape[dim]} != {x.shape[prev]}")
            x = x.diagonal(0, prev, dim)
            back = list(range(x.dim() - 1))
            back.insert(prev, x.dim() - 1)
            x = x.permute(back)  # movedim(-1, prev)
    for k, val in enumerate(permutation):
        if val == -1:  # a label this operand lacks
            x = x.unsqueeze(dim)
            permutation[k] = dim
            dim += 1
    return x.permute(permutation)


def sumproduct_pair(left, right, sum_dims: list[int]):
    """aten's sumproduct_pair (keepdim): the product of two aligned operands summed over
    sum_dims, as one bmm between a permute and a reshape of each."""
    if not sum_dims:
        return left * right
    lro, lo, ro = [], [], []
    lro_size = lo_size = ro_size = sum_size = 1
    for i in range(left.dim()):
        sl, sr = left.shape[i] != 1, right.shape[i] != 1
        if i in sum_dims:
            if sl and sr:
                if left.shape[i] != right.shape[i]:
                    raise InvalidArgumentError("non-broadcast dimensions must match")
                sum_size *= left.shape[i]
            elif sl:
                left = left.sum(i, keepdim=True)
            elif sr:
                right = right.sum(i, keepdim=True)
        elif sl and sr:
            if left.shape[i] != right.shape[i]:
                raise InvalidArgumentError("non-broadcast dimensions must match")
            lro.append(i)
            lro_size *= left.shape[i]
        elif sl:
            lo.append(i)
            lo_size *= left.shape[i]
        else:
            ro.append(i)
            ro_size *= right.shape[i]
    if lo and ro and ro[-1] < lo[0]:
        # torch 2.13 swaps the sides when that leaves the product in the output's order
        left, right, lo, ro, lo_size, ro_size = right, left, ro, lo, ro_size, lo_size
    out_size = ([left.shape[d] for d in lro + lo] + [1] * len(sum_dims)
                + [right.shape[d] for d in ro])
    operm = [0] * len(out_size)
    for k, d in enumerate(lro + lo + sum_dims + ro):
        operm[d] = k
    left = reshape(left.permute(lro + lo + sum_dims + ro), (lro_size, lo_size, sum_size))
    right = reshape(right.permute(lro + sum_dims + ro + lo), (lro_size, sum_size, ro_size))
    return left.bmm(right).view(out_size).permute(operm)


def einsum(equation: str, *operands):
    """Sum of products over the indices the equation names (torch.einsum), including
    "..." for broadcast dims and repeated indices for diagonals."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    if not operands:
        raise InvalidArgumentError("einsum(): must provide at least one operand")
    ops_labels, out, ell_num_dim = _parse(equation, operands)
    index, perm_index, out_num_dim = _order(ops_labels, out, ell_num_dim)
    label_size: dict[str, int] = {}
    ell_sizes = [1] * ell_num_dim
    dim_counts = [0] * perm_index
    ops = [_align(i, x, ls, index, perm_index, ell_num_dim, label_size, ell_sizes, dim_counts)
           for i, (x, ls) in enumerate(zip(operands, ops_labels, strict=True))]
    result = ops[0]
    for b in ops[1:]:
        a, sum_dims, a_sum, b_sum = result, [], [], []
        for dim in range(out_num_dim, perm_index):
            if a.shape[dim] != 1 and b.shape[dim] != 1:
                dim_counts[dim] -= 1
                if dim_counts[dim] == 1:
                    sum_dims.append(dim)
                    dim_counts[dim] = 0
            elif dim_counts[dim] == 1:
                if a.shape[dim] != 1:
                    a_sum.append(dim)
                    dim_counts[dim] = 0
                elif b.shape[dim] != 1:
                    b_sum.append(dim)
                    dim_counts[dim] = 0
        if a_sum:
            a = a.sum(tuple(a_sum), keepdim=True)
        if b_sum:
            b = b.sum(tuple(b_sum), keepdim=True)
        result = sumproduct_pair(a, b, sum_dims)
    if perm_index > out_num_dim:
        if len(ops) > 1:  # every contracted dim has size one now
            return result.view(list(result.shape[:out_num_dim]))
        return result.sum(tuple(range(out_num_dim, perm_index)))
    return result
