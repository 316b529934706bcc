"""What the servicer hands the executor and gets back: plain Python, no protobuf.

Every form the wire accepts is lowered at the edge (`_convert`) to one `Request`: ops, then
ids to release, then at most one action. RunOps is ops and release; Backward, Grad, Fetch,
ListTensors, DescribeGraph and Upload (once its bytes arrived) are an action alone; Release
is a release alone; a Pipeline request is all three. `Executor.run` is the one way to run
any of them.

Ops arrive as `OpSource`s: the entries of one request field and how to read one. An entry is
read only when its turn comes, so an op that cannot even be read fails in its place and the
ops before it keep their effect, as ops that fail while running do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

# An op as the executor runs it: (name, inputs, output ids, attrs, flags). Inputs are tensor
# ids (str), Python scalars, or a host array (the data of the "tensor" op).
Op = tuple[str, tuple, tuple, dict, int]


class OpSource(NamedTuple):
    """Ops of one request field: `read(entry) -> Op`, and `where(entry) -> (name, site)`,
    which names an entry in an error even when it cannot be read."""

    entries: Sequence
    read: Callable[[Any], Op]
    where: Callable[[Any], tuple[str, str]]


@dataclass(frozen=True)
class TensorMeta:
    """What a caller may know about a bound tensor without its data."""

    id: str
    shape: tuple[int, ...]
    strides: tuple[int, ...]
    dtype: str
    device: str
    requires_grad: bool
    is_leaf: bool
    grad_fn: str
    version: int
    has_grad: bool


@dataclass
class BackwardAction:
    tensors: list[str]
    grad_tensors: list[str] = field(default_factory=list)
    retain_graph: bool | None = None
    create_graph: bool = False
    inputs: list[str] = field(default_factory=list)


@dataclass
class GradAction:
    outputs: list[str]
    inputs: list[str]
    results: list[str]
    grad_outputs: list[str] = field(default_factory=list)
    retain_graph: bool | None = None
    create_graph: bool = False
    allow_unused: bool = False


@dataclass
class FetchAction:
    ids: list[str]
    grad: bool = False


@dataclass
class ListAction:
    ids: list[str] = field(default_factory=list)


@dataclass
class GraphAction:
    """DescribeGraph: the backward graph of `id`, leaves named by `names` (tensor id -> name)."""

    id: str
    names: dict[str, str] = field(default_factory=dict)


@dataclass
class UploadAction:
    """Upload, once its bytes arrived: bind `id` to a new leaf made from the host `array`."""

    id: str
    array: Any
    requires_grad: bool = False


Action = BackwardAction | GradAction | FetchAction | ListAction | GraphAction | UploadAction


@dataclass
class Request:
    """One request of any RPC, lowered: `ops` run in order up to the first failure, then the
    ids in `release` are dropped, then `then` runs unless something failed."""

    ops: Sequence[OpSource] = ()
    release: Sequence[str] = ()
    then: Action | None = None


@dataclass
class StepResult:
    """What `Executor.run` did: the bound outputs, how many released ids were bound, the
    action's result, and the first error (an OpFailure, or the action's own error) if any."""

    outputs: list[TensorMeta] = field(default_factory=list)
    released: int = 0
    result: Any = None
    error: Exception | None = None

    def value(self):
        """The action's result; the error raised when there is one (a unary call's way)."""
        if self.error is not None:
            raise self.error
        return self.result


def tensor_meta(tid: str, t) -> TensorMeta:
    """The TensorInfo facts of one engine tensor."""
    return TensorMeta(
        id=tid, shape=tuple(int(n) for n in t.shape), strides=t.stride(), dtype=t.dtype.name,
        device=t.device, requires_grad=t.requires_grad, is_leaf=t.is_leaf,
        grad_fn="" if t.grad_fn is None else t.grad_fn.name(), version=t._version,
        has_grad=t._grad is not None,
    )
