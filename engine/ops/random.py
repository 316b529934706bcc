"""Random ops: torch's factories (randn, rand, randint, randperm), in-place fills (uniform_,
normal_, random_, bernoulli_, exponential_, geometric_, cauchy_, log_normal_) and samplers
(bernoulli, multinomial, poisson), drawn through torch's CPU kernels (core/torch_dists.py).

Every op takes `generator=True` to say that its last input is a generator's state tensor
(core/random.py); otherwise it draws from the current generator. An in-place fill visits the
target's elements in memory order, as torch's TensorIterator does, and a non-contiguous
target takes normal_'s scalar path, as torch's does.
"""

from __future__ import annotations

import inspect

import numpy as np

from ..core import torch_dists
from ..core.dtype import as_dtype, int64, uint8
from ..core.errors import InvalidArgumentError
from ..core.mt19937 import CPUGenerator
from ..core.registry import Meta, defop
from ..core.shape import broadcast_shapes, check_shape
from .edges import edges_of, zero_grads
from .random_sample import multinomial_indices, randperm_values, trunc_normal_values

_TORCH_NAMES = {"int64": "Long", "int32": "Int", "int16": "Short", "int8": "Char",
                "uint8": "Byte", "bool": "Bool", "float16": "Half", "float32": "Float",
                "float64": "Double"}


def _torch_name(dtype) -> str:
    return _TORCH_NAMES.get(dtype.name, dtype.name.capitalize())


def _floating(kernel: str, dtype) -> None:
    if not dtype.is_floating_point:
        raise InvalidArgumentError(f'"{kernel}" not implemented for \'{_torch_name(dtype)}\'')


# -- factories ---------------------------------------------------------------------------------
def _shaped_meta(kernel):
    def infer(*_state, shape, dtype, device=None, generator=False):
        m = Meta(check_shape(shape), as_dtype(dtype))
        _floating(kernel, m.dtype)
        return m

    return infer


_SHAPED = ("shape", "dtype", "device", "generator")
defop("randn", infer=_shaped_meta("normal_kernel_cpu"), needs_device=True, random=True,
      attrs=_SHAPED)(
    lambda xp, *_s, shape, dtype, device, gen: gen("normal", shape, as_dtype(dtype).np))
defop("rand", infer=_shaped_meta("uniform_kernel_cpu"), needs_device=True, random=True,
      attrs=_SHAPED)(
    lambda xp, *_s, shape, dtype, device, gen: gen("uniform", shape, as_dtype(dtype).np))


def _randint_meta(*_state, low, high, shape, dtype="int64", device=None, generator=False):
    if high <= low:
        raise InvalidArgumentError(
            f"random_ expects 'from' to be less than 'to', but got from={low} >= to={high}")
    return Meta(check_shape(shape), as_dtype(dtype))


@defop("randint", infer=_randint_meta, needs_device=True, random=True,
       attrs=("low", "high", "shape", "dtype", "device", "generator"))
def _randint(xp, *_s, low, high, shape, dtype="int64", device=None, gen=None):
    return gen("random_from_to", shape, as_dtype(dtype).np, int(low), int(high))


def _randperm_meta(*_state, n, dtype="int64", device=None, generator=False):
    if n < 0:
        raise InvalidArgumentError(f"n must be non-negative, got{n}")
    return Meta(check_shape((n,)), as_dtype(dtype))


@defop("randperm", infer=_randperm_meta, needs_device=True, random=True,
       attrs=("n", "dtype", "device", "generator"))
def _randperm(xp, *_s, n, dtype="int64", device=None, gen=None):
    values = randperm_values(gen.gen, int(n))
    return gen.to_device(values.astype(as_dtype(dtype).np))


def _rng_state_meta(*_state, device=None, generator=False):
    return Meta((5056,), uint8)


@defop("rng_state", infer=_rng_state_meta, needs_device=True, random=True,
       attrs=("device", "generator"))
def _rng_state(xp, *_s, device=None, gen=None):
    """The current generator's state bytes (torch.get_rng_state)."""
    return gen.to_device(np.frombuffer(gen.gen.get_state(), np.uint8).copy())


def _seeded_rng_state_meta(seed):
    if seed.dtype != int64 or tuple(seed.shape) != ():
        raise InvalidArgumentError("seeded_rng_state expects an int64 scalar seed, got "
                                   f"{seed.dtype} of shape {tuple(seed.shape)}")
    return Meta((5056,), uint8)


@defop("seeded_rng_state", infer=_seeded_rng_state_meta, differentiable=False)
def _seeded_rng_state(xp, seed):
    """The state bytes of a CPU generator seeded with `seed` (a drawn tensor), made where the
    seed lives: torch's `Generator().manual_seed(seed.item())` without fetching the seed."""
    value = int((np.asarray(seed) if xp is np else xp.asnumpy(seed)).reshape(()))
    state = np.frombuffer(CPUGenerator(value).get_state(), np.uint8)
    return xp.asarray(state.copy())


# -- in-place fills ----------------------------------------------------------------------------
def _in_memory_order(a, values: np.ndarray, gen) -> np.ndarray:
    """`values` (drawn in torch's visiting order) laid out in `a`'s shape: row-major for a
    contiguous target, else in the order of its strides (TensorIterator's)."""
    if a.ndim < 2 or a.flags.c_contiguous:
        return values.reshape(a.shape)
    perm = sorted(range(a.ndim), key=lambda i: -abs(a.strides[i]))
    out = np.empty(a.shape, values.dtype)
    out.transpose(perm)[...] = values.reshape([a.shape[i] for i in perm])
    return out


def _fill(kernel: str, floating: str | None, attrs: tuple[str, ...]):
    """An in-place fill op (shape rule, forward): `kernel` drawn for every element of the
    target, with `attrs` (keyword-only, described so by ListOps)."""

    def forward(xp, a, *_s, gen, **kw):
        kw.pop("generator", None)
        n = int(a.size)
        if kernel == "normal":
            kw["contiguous"] = bool(a.flags.c_contiguous)
        values = getattr(_dists(), kernel)(gen.gen, n, a.dtype, **kw)
        return gen.to_device(_in_memory_order(a, np.asarray(values, a.dtype), gen))

    def infer(a, *_state, generator=False, **kw):
        if floating is not None:
            _floating(floating, a.dtype)
        _check_args(kernel, a.dtype, kw)
        return Meta(a.shape, a.dtype)

    P = inspect.Parameter
    infer.__signature__ = inspect.Signature(
        [P("a", P.POSITIONAL_OR_KEYWORD), P("_state", P.VAR_POSITIONAL)]
        + [P(n, P.KEYWORD_ONLY) for n in attrs] + [P("generator", P.KEYWORD_ONLY, default=False)])
    return infer, forward


def _dists():
    return torch_dists


def _check_args(kernel: str, dtype, kw: dict) -> None:
    if kernel == "uniform" and kw["low"] > kw["high"]:
        raise InvalidArgumentError(f"uniform_ expects to return a [from, to) range, but found "
                                   f"from={kw['low']} > to={kw['high']}")
    if kernel in ("normal", "log_normal") and kw["std"] < 0:
        raise InvalidArgumentError(f"normal expects std >= 0.0, but found std {kw['std']}")
    if kernel == "exponential" and not kw["lambd"] > 0:
        raise InvalidArgumentError(f"exponential_ expects lambda > 0.0, but found "
                                   f"lambda={kw['lambd']}")
    if kernel == "geometric" and not 0 < kw["p"] < 1:
        raise InvalidArgumentError(f"geometric_ expects p to be in (0, 1), but got p={kw['p']}")
    if kernel == "bernoulli_scalar" and not 0 <= kw["p"] <= 1:
        raise InvalidArgumentError(f"bernoulli_ expects p to be in [0, 1], but got p={kw['p']}")


for _name, _kernel, _float, _attrs, _node in (
        ("uniform", "uniform", "uniform_kernel_cpu", ("low", "high"), "UniformBackward0"),
        ("normal", "normal", "normal_kernel_cpu", ("mean", "std"), "NormalBackward0"),
        ("exponential", "exponential", "exponential_cpu", ("lambd",), "ExponentialBackward0"),
        ("geometric", "geometric", None, ("p",), "GeometricBackward0"),
        ("cauchy", "cauchy", "cauchy_cpu", ("median", "sigma"), "CauchyBackward0"),
        ("log_normal", "log_normal", "log_normal_cpu", ("mean", "std"), "LogNormalBackward0"),
        ("bernoulli_p", "bernoulli_scalar", None, ("p",), "BernoulliBackward2"),
):
    _infer, _forward = _fill(_kernel, _float, _attrs)
    defop(_name, infer=_infer, random=True, attrs=(*_attrs, "generator"),
          grad_name=edges_of(_node, (0,)))(_forward).def_backward(zero_grads)


def _trunc_normal_meta(a, *_state, mean, std, low, high, generator=False):
    _floating("normal_kernel_cpu", a.dtype)
    if not std > 0:
        raise InvalidArgumentError(f"trunc_normal_ expects std > 0.0, but found std {std}")
    return Meta(a.shape, a.dtype)


@defop("trunc_normal", infer=_trunc_normal_meta, random=True,
       attrs=("mean", "std", "low", "high", "generator"))
def _trunc_normal(xp, a, *_s, mean, std, low, high, gen):
    """nn.init.trunc_normal_ as torch 2.13 draws it (ops/random_sample.py)."""
    values = trunc_normal_values(gen.gen, int(a.size), a.dtype, bool(a.flags.c_contiguous),
                                 float(mean), float(std), float(low), float(high))
    return gen.to_device(_in_memory_order(a, values, gen))


def _random_meta(a, *_state, low=0, high=None, full=False, to_only=False, generator=False):
    if high is not None and low >= high:
        raise InvalidArgumentError(f"random_ expects 'from' to be less than 'to', but got "
                                   f"from={low} >= to={high}")
    if a.dtype.is_floating_point and a.dtype.name not in ("float16", "float32", "float64"):
        raise InvalidArgumentError(f'"random_" not implemented for \'{_torch_name(a.dtype)}\'')
    return Meta(a.shape, a.dtype)


def _random_forward(xp, a, *_s, low=0, high=None, full=False, to_only=False, gen):
    """random_(): the dtype's whole range; random_(to) and random_(from, to): [from, to);
    random_(from, None): [from, dtype's max]; from = int64's min and to None: 64 bits."""
    dists, dtype = _dists(), a.dtype
    if full:
        values = dists.random_full_range(gen.gen, a.size, dtype)
    elif high is None and low == 0 and not full:
        values = dists.random_default(gen.gen, a.size, dtype)
    else:
        if high is None:  # to the dtype's largest value, inclusive
            top = (1 << {8: 53, 4: 24, 2: 11}[dtype.itemsize] if dtype.kind == "f"
                   else 1 if dtype == np.bool_ else int(np.iinfo(dtype).max))
            high = top + 1
        values = dists.random_from_to(gen.gen, a.size, dtype, int(low), int(high))
    return gen.to_device(_in_memory_order(a, values, gen))


# torch's node per overload: random_(from, to) 0, random_(to) 1, random_() 2
_RANDOM_NODES = tuple(edges_of(f"RandomBackward{k}", (0,)) for k in range(3))


def _random_node(a, *_s, low=0, high=None, full=False, to_only=False, generator=False):
    return _RANDOM_NODES[1 if to_only else 0 if high is not None or full else 2]


defop("random", infer=_random_meta, random=True, grad_name=_random_node,
      attrs=("low", "high", "full", "to_only", "generator"))(_random_forward).def_backward(
    zero_grads)


# -- samplers ----------------------------------------------------------------------------------
def _bernoulli_meta(a, p, *_state, generator=False):
    if not hasattr(p, "shape"):
        raise InvalidArgumentError("bernoulli_ takes a probability tensor or a float")
    _floating("bernoulli_tensor_cpu_p_", p.dtype)
    if broadcast_shapes(a.shape, p.shape) != tuple(a.shape):
        raise InvalidArgumentError(f"output with shape {list(a.shape)} doesn't match the "
                                   f"broadcast shape {list(broadcast_shapes(a.shape, p.shape))}")
    return Meta(a.shape, a.dtype)


@defop("bernoulli", infer=_bernoulli_meta, random=True, attrs=("generator",),
       grad_name=edges_of("BernoulliBackward1", (0, 1)))
def _bernoulli_tensor(xp, a, p, *_s, gen):
    """bernoulli_(p tensor): one u < p per element of the target (p broadcast to it)."""
    p = np.broadcast_to(gen.host(p), a.shape)
    hits = _dists().bernoulli_tensor(gen.gen, _memory_view(a, p))
    return gen.to_device(_in_memory_order(a, hits.reshape(-1).astype(a.dtype), gen))


_bernoulli_tensor.def_backward(zero_grads)

# What torch's out-of-place samplers record on the tensors they drew from: a node with a zero
# gradient for each (their values are not differentiable in the parameters). The values are
# drawn first, without a graph; this op gives them that node: inputs (*parameters, values).
_SAMPLED = {"BernoulliBackward0": (0,), "NormalBackward1": (0,), "NormalBackward2": (0,),
            "NormalBackward3": (0, 1)}  # node: its edges, the parameters
for _node, _keep in _SAMPLED.items():
    edges_of(_node, _keep)


def _sampled_meta(*inputs, node):
    if node not in _SAMPLED or len(inputs) != len(_SAMPLED[node]) + 1 or \
            not all(hasattr(x, "shape") for x in inputs):
        raise InvalidArgumentError(f"sampled: node must be one of {sorted(_SAMPLED)}, after "
                                   "its parameter tensors and then the drawn values")
    return Meta(inputs[-1].shape, inputs[-1].dtype)


@defop("sampled", infer=_sampled_meta, grad_name=lambda *inputs, node: node, attrs=("node",))
def _sampled(xp, *inputs, node):
    return inputs[-1].copy()


_sampled.def_backward(zero_grads)


def _memory_view(a, p: np.ndarray) -> np.ndarray:
    """`p` arranged in the order the target's elements are visited."""
    if a.ndim < 2 or a.flags.c_contiguous:
        return np.ascontiguousarray(p)
    perm = sorted(range(a.ndim), key=lambda i: -abs(a.strides[i]))
    return np.ascontiguousarray(p.transpose(perm))


def _multinomial_meta(p, *_state, num_samples, replacement=False, generator=False):
    _floating("multinomial", p.dtype)
    if len(p.shape) not in (1, 2):
        raise InvalidArgumentError("prob_dist must be 1 or 2 dim")
    if num_samples <= 0:
        raise InvalidArgumentError("cannot sample n_sample <= 0 samples")
    if not replacement and num_samples > p.shape[-1]:
        raise InvalidArgumentError("cannot sample n_sample > prob_dist.size(-1) samples "
                                   "without replacement")
    return Meta((*p.shape[:-1], int(num_samples)), int64)


@defop("multinomial", infer=_multinomial_meta, random=True,
       attrs=("num_samples", "replacement", "generator"))
def _multinomial(xp, p, *_s, num_samples, replacement=False, gen):
    out = multinomial_indices(gen.gen, gen.host(p), int(num_samples), bool(replacement))
    return gen.to_device(out)


def _poisson_meta(rates, *_state, generator=False):
    _floating("poisson_cpu", rates.dtype)
    return Meta(rates.shape, rates.dtype)


@defop("poisson", infer=_poisson_meta, random=True, attrs=("generator",),
       grad_name=edges_of("PoissonBackward0", (0,)))
def _poisson(xp, rates, *_s, gen):
    """Poisson counts drawn by numpy's sampler from a 64-bit seed taken from the stream:
    reproducible under manual_seed, but not torch's values (torch's rejection sampler
    takes a data-dependent number of draws per element; see the README)."""
    lam = gen.host(rates)
    if lam.size and (np.isnan(lam).any() or (lam < 0).any()):
        raise InvalidArgumentError("invalid Poisson rate, expected rate to be non-negative")
    seed = int(gen.gen.random64(1)[0])
    counts = np.random.Generator(np.random.PCG64(seed)).poisson(lam.astype(np.float64))
    return gen.to_device(counts.astype(lam.dtype))


_poisson.def_backward(zero_grads)  # torch's `self: zeros_like(self)`
