"""`Size`: the type of `t.shape` and `t.size()`, torch.Size's counterpart.

A tuple subclass, so it compares, hashes, unpacks and indexes as the plain tuple it was;
it prints `gradserve.Size([2, 3])` and has `numel()`. Tensors make it once when they are
made (it adds nothing to a shape read), and the shape rules read it as a tuple. Indexing
and slicing stay tuple's C code, so a slice is a plain tuple (torch's is a Size).

    >>> from gradserve import engine
    >>> engine.zeros(2, 3).shape
    gradserve.Size([2, 3])
    >>> engine.zeros(2, 3).shape.numel(), engine.Size([4, 5]) == (4, 5)
    (6, True)
"""

from __future__ import annotations


class Size(tuple):
    """A tensor's shape (see the module doc)."""

    __slots__ = ()

    def numel(self) -> int:
        """The number of elements a tensor of this shape has."""
        n = 1
        for s in self:
            n *= s
        return n

    def __repr__(self) -> str:
        return f"gradserve.Size({list(self)!r})"

    __str__ = __repr__

    def __add__(self, other):
        if not isinstance(other, tuple):
            return NotImplemented
        return Size(tuple.__add__(self, other))

    def __radd__(self, other):
        if not isinstance(other, tuple):
            return NotImplemented
        return Size(tuple.__add__(other, self))

    def __mul__(self, n):
        return Size(tuple.__mul__(self, n))

    __rmul__ = __mul__

    def __reduce__(self):
        return (Size, (tuple(self),))


__all__ = ["Size"]
