"""The linear-algebra methods of torch.Tensor (mm, bmm, mv, dot, addmm, ..., trace, kron,
cross, matrix_power), over `_op` like the rest of TensorAPI: named products are one op each
(see _ops_products), the others are compositions with torch's results and gradients."""

from __future__ import annotations

from ..core.errors import InvalidArgumentError


class TensorLinalg:
    __slots__ = ()

    def mm(self, mat2):
        return self._op("mm", self, mat2)

    def bmm(self, mat2):
        return self._op("bmm", self, mat2)

    def mv(self, vec):
        return self._op("mv", self, vec)

    def dot(self, other):
        return self._op("dot", self, other)

    def vdot(self, other):
        return self._op("vdot", self, other)

    def outer(self, vec2):
        for name, x in (("self", self), ("vec2", vec2)):
            if x.ndim != 1:
                raise InvalidArgumentError(
                    f"outer: Expected 1-D argument {name}, but got {x.ndim}-D")
        return self.reshape(-1, 1) * vec2  # torch's composition: MulBackward0

    ger = outer

    def addmm(self, mat1, mat2, *, beta=1, alpha=1):
        return self._op("addmm", self, mat1, mat2, beta=beta, alpha=alpha)

    def addmv(self, mat, vec, *, beta=1, alpha=1):
        return self._op("addmv", self, mat, vec, beta=beta, alpha=alpha)

    def baddbmm(self, batch1, batch2, *, beta=1, alpha=1):
        return self._op("baddbmm", self, batch1, batch2, beta=beta, alpha=alpha)

    def addbmm(self, batch1, batch2, *, beta=1, alpha=1):
        return self._op("addbmm", self, batch1, batch2, beta=beta, alpha=alpha)

    def addmm_(self, mat1, mat2, *, beta=1, alpha=1):
        return self._inplace("addmm", mat1, mat2, beta=beta, alpha=alpha)

    def trace(self):
        return self._op("trace", self)

    def matrix_power(self, n: int):
        """torch's: repeated products (MmBackward0), inv for negative n, eye for 0."""
        n = int(n)
        if self.ndim < 2 or self.shape[-1] != self.shape[-2]:
            _square("linalg.matrix_power", self)
        if n == 0:
            eye = self._op("eye", n=self.shape[-1], dtype=self.dtype.name,
                           device=str(self.device))
            # torch's: a copy of self overwritten by the identity (CopyBackwards over a clone)
            return self.clone().copy_(eye.expand(self.shape))
        a = self if n > 0 else self._op("linalg_inv", self)
        if n == -1:
            return a
        n = abs(n)
        if n == 1:
            return a.clone()
        if n == 3:  # torch's special case: (a @ a) @ a
            return (a @ a) @ a
        result, z = None, a
        while n:  # binary powering, as torch's
            if n & 1:
                result = z if result is None else result @ z
            n >>= 1
            if n:
                z = z @ z
        return result

    def kron(self, other):
        """torch.kron: the Kronecker product, over the trailing dims of the longer operand."""
        nd = max(self.ndim, other.ndim)
        sa = (1,) * (nd - self.ndim) + tuple(self.shape)
        sb = (1,) * (nd - other.ndim) + tuple(other.shape)
        # a[..., i, None] * b[None, ..., j]: interleave the dims, then merge each pair, each
        # reshape an _unsafe_view as in torch's kron
        a = self._op("_unsafe_view", self, shape=tuple(s for n in sa for s in (n, 1)))
        b = other._op("_unsafe_view", other, shape=tuple(s for n in sb for s in (1, n)))
        prod = a * b
        return prod._op("_unsafe_view", prod, shape=tuple(x * y for x, y in zip(sa, sb,
                                                                                strict=True)))

    def cross(self, other, dim=None):
        if dim is None:  # torch.cross's old default: the first dim of size 3
            dim = next((d for d, n in enumerate(self.shape) if n == 3), -1)
        return self._op("linalg_cross", self, other, dim=int(dim))


def _square(name: str, a) -> None:
    if a.ndim < 2:
        raise InvalidArgumentError(
            f"{name}: The input tensor A must have at least 2 dimensions.")
    if a.shape[-1] != a.shape[-2]:
        raise InvalidArgumentError(
            f"{name}: A must be batches of square matrices, but they are {a.shape[-2]} by "
            f"{a.shape[-1]} matrices")
