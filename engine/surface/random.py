"""torch's random surface: `gradserve.Generator`, the in-place samplers as tensor methods
(`uniform_ normal_ random_ bernoulli_ exponential_ geometric_ cauchy_ log_normal_`) and the
module functions `normal bernoulli multinomial poisson`, over either tensor kind.

Without `generator=` an op draws from the stream of wherever its tensor lives (a remote
session's own generator, on the server). A `Generator` is a stream of its own: torch's
state bytes in a uint8 tensor that random ops take as an extra input and update where they
run, so it costs no round trip. The state is made where the generator is first used (from
the seed, locally) and moves, with one wait, if it is later used with a tensor elsewhere.

    >>> from gradserve import engine
    >>> g = Generator().manual_seed(0)
    >>> engine.randn(3, generator=g)
    tensor([ 1.5410, -0.2934, -2.1788])
"""

from __future__ import annotations

import secrets

import numpy as np

from ..core.device import device as _device
from ..core.errors import InvalidArgumentError
from ..core.grad_mode import is_grad_enabled, no_grad
from ..core.mt19937 import DEFAULT_SEED, CPUGenerator
from ..core.shape import broadcast_shapes
from .factories import host_values


class Generator:
    """torch.Generator for the CPU stream: `manual_seed`, `seed`, `initial_seed`,
    `get_state`, `set_state`, and `generator=` on gradserve's random functions."""

    def __init__(self, device="cpu") -> None:
        if str(device) != "cpu":
            raise InvalidArgumentError("gradserve.Generator: only the CPU generator is "
                                       f"reproduced, got device {device!r}")
        self.device = _device("cpu")
        self._bytes: bytes | None = CPUGenerator(DEFAULT_SEED).get_state()
        self._state = None  # the state tensor, once used
        self._where = None  # the factory surface it lives on (engine or a session)

    def manual_seed(self, seed: int) -> Generator:
        self._bytes, self._state, self._where = CPUGenerator(int(seed)).get_state(), None, None
        return self

    def seed(self) -> int:
        s = secrets.randbits(63)
        self.manual_seed(s)
        return s

    def initial_seed(self) -> int:
        return int.from_bytes(self._host_bytes()[:8], "little")

    def get_state(self):
        """torch's state bytes, a uint8 tensor (in-process, or on the generator's session)."""
        if self._state is None:
            # the engine's factories (surface/tensor.py) build on this module
            from .tensor import ENGINE

            return ENGINE.tensor(np.frombuffer(self._bytes, np.uint8).copy())
        return self._state.cpu().clone()

    def set_state(self, new_state) -> Generator:
        data = _host(new_state)
        if data.dtype != np.uint8 or data.size != 5056:
            raise InvalidArgumentError("set_state expects a uint8 tensor of 5056 bytes (a "
                                       "state from get_state)")
        CPUGenerator.from_state(data.tobytes())  # refuses a malformed state now
        self._bytes, self._state, self._where = data.tobytes(), None, None
        return self

    def _host_bytes(self) -> bytes:
        return self._bytes if self._state is None else _host(self._state).tobytes()

    def _state_on(self, home):
        """The state tensor on `home` (a factory surface: the engine or a session)."""
        if self._state is not None and self._where is home:
            return self._state
        data = np.frombuffer(self._host_bytes(), np.uint8).copy()
        self._state = home.tensor(data)  # on the home's device, beside what it draws for
        self._where, self._bytes = home, None
        return self._state

    @classmethod
    def _seeded_by(cls, seed) -> Generator:
        """A generator seeded with `seed`, a drawn int64 scalar tensor, its state made where
        the seed lives (torch's `Generator().manual_seed(seed.item())`, with no fetch)."""
        gen = cls()
        gen._state = seed._op("seeded_rng_state", seed)
        gen._where, gen._bytes = seed._home(), None
        return gen

    def __repr__(self) -> str:
        return f"<gradserve.Generator object at {id(self):#x}>"


def _host(t) -> np.ndarray:
    if hasattr(t, "_home"):
        return np.ascontiguousarray(host_values(t.cpu())).reshape(-1)
    return np.ascontiguousarray(np.asarray(t)).reshape(-1)


def _with(generator, where, others: tuple, attrs: dict) -> tuple[tuple, dict]:
    """(inputs, attrs) of a random op given `generator=`: its state tensor appended on the
    home of `where` (a tensor, or a factory surface) and the attr that says so."""
    if generator is None:
        return others, attrs
    home = where._home() if hasattr(where, "_home") else where
    if not isinstance(generator, Generator):
        raise TypeError(f"generator must be a gradserve.Generator, not "
                        f"{type(generator).__name__}")
    return (*others, generator._state_on(home)), {**attrs, "generator": True}


class TensorRandom:
    """The in-place samplers of torch.Tensor (a mixin of TensorAPI)."""

    __slots__ = ()

    def _sample_(self, name: str, generator, *others, **attrs):
        others, attrs = _with(generator, self, others, attrs)
        return self._inplace(name, *others, **attrs)

    def uniform_(self, from_=0.0, to=1.0, *, generator=None, **kw):
        """Fill with U(from, to) (torch's `from`, a keyword here as `from_` or `from`)."""
        from_ = kw.pop("from", from_)
        return self._sample_("uniform", generator, low=float(from_), high=float(to), **kw)

    def normal_(self, mean=0.0, std=1.0, *, generator=None):
        return self._sample_("normal", generator, mean=float(mean), std=float(std))

    def exponential_(self, lambd=1.0, *, generator=None):
        return self._sample_("exponential", generator, lambd=float(lambd))

    def geometric_(self, p, *, generator=None):
        return self._sample_("geometric", generator, p=float(p))

    def cauchy_(self, median=0.0, sigma=1.0, *, generator=None):
        return self._sample_("cauchy", generator, median=float(median), sigma=float(sigma))

    def log_normal_(self, mean=1.0, std=2.0, *, generator=None):
        return self._sample_("log_normal", generator, mean=float(mean), std=float(std))

    def random_(self, *args, generator=None, **kw):
        """random_(), random_(to), random_(from, to) (from/to also as keywords)."""
        to_only = len(args) == 1 or not args and "to" in kw and "from" not in kw
        low, high = kw.pop("from", 0), kw.pop("to", None)
        if kw:
            raise TypeError(f"random_() got an unexpected keyword argument '{next(iter(kw))}'")
        if len(args) > 2:
            raise TypeError("random_() takes at most 2 positional arguments")
        if len(args) == 1:
            high = args[0]
        elif len(args) == 2:
            low, high = args
        if high is None and int(low) == 0:  # [0, the dtype's max]: torch's default kernel
            return self._sample_("random", generator)
        full = high is None and int(low) == -(1 << 63)
        return self._sample_("random", generator, low=int(low),
                             high=None if high is None else int(high), full=full,
                             to_only=to_only)

    def bernoulli_(self, p=0.5, *, generator=None):
        if hasattr(p, "shape"):
            return self._sample_("bernoulli", generator, p)
        return self._sample_("bernoulli_p", generator, p=float(p))

    def bernoulli(self, p=None, *, generator=None):
        """A 0/1 tensor like self: each element 1 with probability self (or `p`)."""
        with no_grad():
            out = self._home().empty_like(self)
            out.bernoulli_(self if p is None else p, generator=generator)
        return _sampled("BernoulliBackward0", (self,), out) if p is None else out

    def multinomial(self, num_samples, replacement=False, *, generator=None):
        others, attrs = _with(generator, self, (),
                              {"num_samples": int(num_samples), "replacement": bool(replacement)})
        return self._op("multinomial", self, *others, **attrs)


def normal(mean=0.0, std=1.0, size=None, *, generator=None, dtype=None, device=None,
           requires_grad=False, home=None):
    """torch.normal: tensor means and/or stds (broadcast), or floats with a `size` (made on
    `home`, a factory surface: in-process by default)."""
    mean_t, std_t = hasattr(mean, "shape"), hasattr(std, "shape")
    if not (mean_t or std_t):
        if size is None:
            raise TypeError("normal() missing the size for float mean and std")
        home = home if home is not None else _home_of(None)
        t = home.empty(*_size(size), dtype=dtype, device=device)
        with no_grad():
            t.normal_(mean, std, generator=generator)
        return t.requires_grad_(True) if requires_grad else t
    ref = mean if mean_t else std
    home = ref._home()
    shape = broadcast_shapes(tuple(mean.shape) if mean_t else (),
                             tuple(std.shape) if std_t else ())
    with no_grad():
        noise = home.empty(*shape, dtype=ref.dtype, device=ref.device)
        if not std_t:  # normal(Tensor mean, float std): N(0, std) + mean
            values = noise.normal_(0.0, std, generator=generator) + mean
        else:
            values = noise.normal_(0.0, 1.0, generator=generator) * std + mean
    if not std_t:
        return _sampled("NormalBackward1", (mean,), values)
    return _sampled("NormalBackward3", (mean, std), values) if mean_t else \
        _sampled("NormalBackward2", (std,), values)


def _sampled(node: str, params: tuple, values):
    """`values`, drawn from `params` without a graph, with torch's node on them (a zero
    gradient for each) where a parameter requires grad."""
    if is_grad_enabled() and any(p.requires_grad for p in params):
        return values._op("sampled", *params, values, node=node)
    return values


def _size(size):
    return tuple(size) if isinstance(size, (tuple, list)) else (size,)


def _home_of(t):
    if t is not None:
        return t._home()
    # the engine's factories (surface/tensor.py) build on this module
    from .tensor import ENGINE

    return ENGINE


def bernoulli(input, p=None, *, generator=None):
    """torch.bernoulli: 0/1 draws with probabilities `input` (or a float `p`)."""
    return input.bernoulli(p, generator=generator)


def multinomial(input, num_samples, replacement=False, *, generator=None):
    """torch.multinomial: indices drawn from the rows of `input` (weights)."""
    return input.multinomial(num_samples, replacement, generator=generator)


def poisson(input, generator=None):
    """torch.poisson: counts with rates `input` (gradserve's own sampler; see the README)."""
    others, attrs = _with(generator, input, (), {})
    return input._op("poisson", input, *others, **attrs)


FUNCTIONS = {"normal": normal, "bernoulli": bernoulli, "multinomial": multinomial,
             "poisson": poisson}
