"""torch.return_types: the named tuples `max(dim)`, `sort`, `topk`, ... return.

    >>> from gradserve import engine
    >>> r = engine.tensor([1, 3, 2]).max(0)
    >>> r.values, r.indices
    (tensor(3), tensor(1))
    >>> r
    gradserve.return_types.max(
    values=tensor(3),
    indices=tensor(1))
"""

from __future__ import annotations

from collections import namedtuple


def _make(name: str):
    base = namedtuple(name, ["values", "indices"])

    def __repr__(self) -> str:
        return (f"gradserve.return_types.{name}(\nvalues={self.values!r},\n"
                f"indices={self.indices!r})")

    return type(name, (base,), {"__slots__": (), "__repr__": __repr__,
                                "__module__": "gradserve.return_types"})


max = _make("max")  # noqa: A001  (torch.return_types.max)
min = _make("min")  # noqa: A001
sort = _make("sort")
topk = _make("topk")
kthvalue = _make("kthvalue")
median = _make("median")
cummax = _make("cummax")
cummin = _make("cummin")
