"""What the SDK (client/) and the server (server/) use of the engine beyond its torch API.

`gradserve.engine` is torch's surface; this module is the rest of the contract between the
engine and the two packages built on it, in one place, so that everything else in the engine
stays free to change. (A test holds client/ and server/ to `gradserve.engine` and this
module.) By who needs it:

Both tensor kinds
    `AutogradMeta` (the bookkeeping a proxy shares), `TensorKind` with `run_op` and
    `run_inplace` (the one op sequence: a kind supplies outputs and the write), `Node` and
    `AccumulateGrad` (the graph; `node_class(name)` makes a node's class, named as torch's
    grad_fn), `Shadow` (a data-free stand-in an in-place op saves),
    `FactoryAPI` and `factory_names` (torch's factories over three primitives),
    `format_tensor` and `shown` (torch's repr, and the part of a tensor it shows),
    `MIXED_KINDS` (the error when the two kinds meet), `write_out` (torch's out=),
    `add_tensor_hook`; `FUNCTIONS`, `functional` and
    `FunctionCtx` (the module functions and autograd namespaces the SDK re-exports);
    `Generator` (torch's `Generator`, its state where it is used) and `random` (the
    generator-taking factories and samplers; `generator_inputs`: a random op's inputs
    and attrs given `generator=`).
The client's backward
    `plan_backward` (torch's checks first), `run_backward` (with `grads=None`: the walk
    without data, which says which tensors get a `.grad`), `free_graph`, `hooks_in`,
    `as_list`, `check_roots`, `check_unused`; `describe_graph`/`to_dot` for `gs.viz`.
The training toolkit
    `sgd_update`, `adam_update`, `decayed` (optimizers' updates of each parameter, for both
    tensor kinds; the `optim_sgd_step`/`optim_adam_step` commands run them over many
    parameters as one op).
The server
    `apply`/`apply_inplace` (run an op on engine tensors), `OPS`/`OpDef` (the registry the
    wire names), `backend`, `canonical_device`, `from_numpy_dtype`, `is_dtype_name`,
    `grad_mode`, `client_calls` (how a request's hooks and custom Functions reach the client:
    passed in per request), `set_node_check` (a check run between the nodes of a backward:
    the compute budget), and a session's snapshot: `pack`, `unpack`, `why_not_quiet`,
    `NotQuiet`, `array_bytes`; a captured step's prepared ops (server/_plan.py):
    `known_meta`/`inplace_meta` and `signature`/`inplace_signature` (what a run is checked
    against), `apply_known`/`apply_inplace_known` (the op sequence with those known;
    `apply_direct` where `direct` allows it: a plain CPU kernel), `stand_in` (a gone tensor
    as a planned backward reads it),
    `watch_backward`/`BackwardPlan` (a backward's kernels, watched once and run again).

    >>> from gradserve.engine import seam, tensor
    >>> seam.apply(seam.OPS["mul"], (tensor([1., 2.]), 3.0), {}).tolist()
    [3.0, 6.0]
"""

from __future__ import annotations

from .core import anomaly, grad_mode
from .core.autograd import (
    AccumulateGrad,
    Node,
    free_graph,
    node_class,
    plan_backward,
    run_backward,
    set_node_check,
)
from .core.backend import backend, canonical_device
from .core.callbacks import client_calls
from .core.dispatch import TensorKind
from .core.dispatch import apply as run_op
from .core.dispatch import apply_inplace as run_inplace
from .core.dtype import from_numpy_dtype, is_dtype_name
from .core.errors import MIXED_KINDS
from .core.function import FunctionCtx
from .core.graph import describe_graph, to_dot
from .core.hooks import add_tensor_hook, hooks_in
from .core.meta import AutogradMeta, Shadow
from .core.registry import OPS, OpDef
from .ops.optim import adam_update, decayed, sgd_update
from .surface import random
from .surface.factories import FactoryAPI, factory_names
from .surface.format import format_tensor, shown
from .surface.functional import functional
from .surface.functions import FUNCTIONS
from .surface.grad_api import as_list, check_roots, check_unused
from .surface.out import write_out
from .surface.prepared import (
    apply_direct,
    apply_inplace_known,
    apply_known,
    direct,
    inplace_meta,
    inplace_signature,
    known_meta,
    signature,
    stand_in,
)
from .surface.prepared_backward import BackwardPlan, watch_backward
from .surface.random import Generator
from .surface.random import _with as generator_inputs
from .surface.snapshot import NotQuiet, array_bytes, pack, unpack, why_not_quiet
from .surface.tensor import apply, apply_inplace

__all__ = [
    "FUNCTIONS", "MIXED_KINDS", "OPS", "AccumulateGrad", "AutogradMeta", "BackwardPlan",
    "adam_update", "anomaly", "decayed",
    "FactoryAPI",
    "FunctionCtx", "Generator", "Node", "NotQuiet", "OpDef", "Shadow", "TensorKind",
    "add_tensor_hook", "apply", "apply_direct", "apply_inplace", "apply_inplace_known",
    "apply_known", "direct",
    "array_bytes", "as_list", "backend",
    "canonical_device", "check_roots", "check_unused", "client_calls", "describe_graph",
    "factory_names", "format_tensor", "free_graph", "from_numpy_dtype", "functional",
    "generator_inputs", "grad_mode", "hooks_in", "inplace_meta", "inplace_signature",
    "is_dtype_name", "known_meta", "node_class", "pack",
    "plan_backward", "random", "run_backward", "run_inplace", "run_op", "set_node_check",
    "sgd_update",
    "shown", "signature", "stand_in", "to_dot",
    "unpack", "watch_backward", "why_not_quiet", "write_out",
]
