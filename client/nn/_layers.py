"""Layers: Linear, ReLU/Tanh/Sigmoid, Dropout, Identity, Flatten and Sequential; and
`new_parameter`, how every layer creates its parameters."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable

from gradserve.engine import no_grad

from .._default import default_session
from . import functional as F
from . import init
from ._module import Module


def new_parameter(session, *shape, dtype=None, init: Callable | None = None):
    """A leaf that requires grad, made on `session` (None: `default_session`) and filled in
    place by `init` (a `gradserve.nn.init` function) under no_grad.

    >>> w = new_parameter(None, 3, 2, init=nn.init.zeros_)
    >>> w.requires_grad, w.is_leaf, w.shape
    (True, True, gradserve.Size([3, 2]))
    """
    t = default_session(session).empty(*shape, dtype=dtype)
    if init is not None:
        with no_grad():
            init(t)
    return t.requires_grad_()


def new_buffer(session, factory: str, *shape, dtype=None):
    """A tensor that is module state but not a parameter (running statistics, counters).

    >>> new_buffer(None, "ones", 2)
    tensor([1., 1.])
    """
    return getattr(default_session(session), factory)(*shape, dtype=dtype)


class Linear(Module):
    """y = x @ weight.T + bias, with torch's initialisation: weight and bias drawn from
    U(-1/sqrt(in_features), 1/sqrt(in_features)).

    `session=` says where the parameters live: None or `gradserve.engine` keeps them
    in-process, a remote session `s` creates them on its server.

    >>> fc = nn.Linear(784, 10)                # in-process
    >>> fc_remote = nn.Linear(784, 10, session=s)
    >>> fc(engine.randn(64, 784)).shape
    gradserve.Size([64, 10])
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, session=None,
                 dtype=None) -> None:
        super().__init__()
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.session = default_session(session)
        self.weight = self._uniform(self.out_features, self.in_features, dtype=dtype)
        if bias:
            self.bias = self._uniform(self.out_features, dtype=dtype)
        else:
            self.register_parameter("bias", None)

    def _uniform(self, *shape, dtype):
        t = self.session.empty(*shape, dtype=dtype)
        self._init(t)
        return t.requires_grad_()

    def _init(self, t) -> None:
        # torch: kaiming_uniform_(a=sqrt(5)) for the weight, U(-b, b) with b = 1/sqrt(fan_in)
        # for the bias, drawn in that order in place (so the values are torch's)
        if t.dim() == 2:
            init.kaiming_uniform_(t, a=math.sqrt(5))
        else:
            bound = 1.0 / math.sqrt(self.in_features) if self.in_features > 0 else 0.0
            init.uniform_(t, -bound, bound)

    def reset_parameters(self) -> None:
        """Draw fresh initial values, in place. >>> fc.reset_parameters()"""
        with no_grad():
            for p in self.parameters():
                self._init(p)

    def forward(self, input):
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class ReLU(Module):
    """max(x, 0) as a layer. >>> nn.ReLU()(engine.tensor([-1., 1.]))
    tensor([0., 1.])
    """

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def forward(self, input):
        return F.relu(input, inplace=self.inplace)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class Tanh(Module):
    """tanh as a layer. >>> nn.Tanh()(engine.zeros(2))
    tensor([0., 0.])
    """

    def forward(self, input):
        return F.tanh(input)


class Sigmoid(Module):
    """The logistic function as a layer. >>> nn.Sigmoid()(engine.zeros(1))
    tensor([0.5000])
    """

    def forward(self, input):
        return F.sigmoid(input)


class Dropout(Module):
    """Zero elements with probability p while training; the identity in eval mode.

    >>> nn.Dropout(0.5).eval()(engine.ones(2))
    tensor([1., 1.])
    """

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = p
        self.inplace = inplace

    def forward(self, input):
        return F.dropout(input, self.p, self.training, self.inplace)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class Identity(Module):
    """Returns its input; arguments are accepted and ignored, as torch's.

    >>> nn.Identity()(engine.ones(2))
    tensor([1., 1.])
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__()

    def forward(self, input):
        return input


class Flatten(Module):
    """Flattens dims start_dim..end_dim (by default all but the batch dim).

    >>> nn.Flatten()(engine.ones(2, 3, 4)).shape
    gradserve.Size([2, 12])
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, input):
        return input.flatten(self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Sequential(Module):
    """Modules applied one after another; indexable like a list.

    >>> model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 10))
    >>> model[0]
    Linear(in_features=784, out_features=512, bias=True)
    """

    def __init__(self, *args) -> None:
        super().__init__()
        if len(args) == 1 and isinstance(args[0], OrderedDict):
            for name, module in args[0].items():
                self.add_module(name, module)
        else:
            for i, module in enumerate(args):
                self.add_module(str(i), module)

    def __getitem__(self, index):
        items = list(self._modules.items())
        if isinstance(index, slice):
            return Sequential(OrderedDict(items[index]))
        n = len(items)
        if not -n <= index < n:
            raise IndexError(f"index {index} is out of range")
        return items[index][1]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module: Module) -> Sequential:
        """Add a module at the end; returns self. >>> model.append(nn.ReLU())"""
        self.add_module(str(len(self)), module)
        return self

    def forward(self, input):
        for module in self._modules.values():
            input = module(input)
        return input
