"""Normalisation layers (BatchNorm1d/2d, LayerNorm, GroupNorm) and Embedding."""

from __future__ import annotations

from gradserve.engine import InvalidArgumentError, no_grad

from .._default import default_session
from . import functional as F
from . import init
from ._layers import new_buffer, new_parameter
from ._module import Module


class _BatchNorm(Module):
    _dims: tuple[int, ...] = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True, device=None,
                 dtype=None, session=None, *, bias: bool = True) -> None:
        super().__init__()
        self.num_features, self.eps, self.momentum = int(num_features), eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.session = default_session(session)
        if affine:
            self.weight = new_parameter(self.session, self.num_features, dtype=dtype,
                                        init=init.ones_)
        else:
            self.register_parameter("weight", None)
        if affine and bias:
            self.bias = new_parameter(self.session, self.num_features, dtype=dtype,
                                      init=init.zeros_)
        else:
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", new_buffer(self.session, "zeros",
                                                            self.num_features, dtype=dtype))
            self.register_buffer("running_var", new_buffer(self.session, "ones",
                                                           self.num_features, dtype=dtype))
            self.register_buffer("num_batches_tracked", new_buffer(self.session, "zeros",
                                                                   dtype="int64"))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        if device is not None:
            self.to(device)

    def reset_running_stats(self) -> None:
        """Running mean 0, variance 1, batch count 0. >>> bn.reset_running_stats()"""
        if self.track_running_stats:
            with no_grad():
                self.running_mean.zero_()
                self.running_var.fill_(1)
                self.num_batches_tracked.zero_()

    def forward(self, input):
        if input.dim() not in self._dims:
            raise InvalidArgumentError(
                f"expected {' or '.join(f'{d}D' for d in self._dims)} input (got {input.dim()}D "
                "input)")
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            with no_grad():
                self.num_batches_tracked.add_(1)
            if self.momentum is None:  # a cumulative average over the batches seen so far
                momentum = 1.0 / float(self.num_batches_tracked.item())
        use_batch = self.training or self.running_mean is None
        return F.batch_norm(
            input,
            self.running_mean if not self.training or self.track_running_stats else None,
            self.running_var if not self.training or self.track_running_stats else None,
            self.weight, self.bias, use_batch, momentum, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, bias={self.bias is not None}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) or (N, C, L), with running statistics for eval().

    >>> nn.BatchNorm1d(4)
    BatchNorm1d(4, eps=1e-05, momentum=0.1, affine=True, bias=True, track_running_stats=True)
    """

    _dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W), per channel.

    >>> nn.BatchNorm2d(8)(engine.randn(4, 8, 5, 5)).shape
    gradserve.Size([4, 8, 5, 5])
    """

    _dims = (4,)


class LayerNorm(Module):
    """Normalise over the trailing `normalized_shape` dims, with a learned scale and shift.

    >>> nn.LayerNorm(8)
    LayerNorm((8,), eps=1e-05, elementwise_affine=True, bias=True)
    """

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, device=None, dtype=None, session=None) -> None:
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else normalized_shape
        self.normalized_shape = tuple(int(n) for n in shape)
        self.eps, self.elementwise_affine = eps, elementwise_affine
        self.session = default_session(session)
        if elementwise_affine:
            self.weight = new_parameter(self.session, *self.normalized_shape, dtype=dtype,
                                        init=init.ones_)
            if bias:
                self.bias = new_parameter(self.session, *self.normalized_shape, dtype=dtype,
                                          init=init.zeros_)
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if device is not None:
            self.to(device)

    def forward(self, input):
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}, bias={self.bias is not None}")


class GroupNorm(Module):
    """Normalise groups of channels of (N, C, *), with a per-channel scale and shift.

    >>> nn.GroupNorm(2, 8)
    GroupNorm(2, 8, eps=1e-05, affine=True, bias=True)
    """

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5,
                 affine: bool = True, device=None, dtype=None, session=None, *,
                 bias: bool = True) -> None:
        super().__init__()
        if num_channels % num_groups:
            raise ValueError("num_channels must be divisible by num_groups")
        self.num_groups, self.num_channels = int(num_groups), int(num_channels)
        self.eps, self.affine = eps, affine
        self.session = default_session(session)
        if affine:
            self.weight = new_parameter(self.session, self.num_channels, dtype=dtype,
                                        init=init.ones_)
        else:
            self.register_parameter("weight", None)
        if affine and bias:
            self.bias = new_parameter(self.session, self.num_channels, dtype=dtype,
                                      init=init.zeros_)
        else:
            self.register_parameter("bias", None)
        if device is not None:
            self.to(device)

    def forward(self, input):
        return F.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, "
                f"bias={self.bias is not None}")


class Embedding(Module):
    """A table of `num_embeddings` vectors looked up by integer index; weights start as
    N(0, 1) and the padding_idx row (if any) as zeros, as torch's.

    >>> emb = nn.Embedding(10, 3, padding_idx=0)
    >>> emb(engine.tensor([[1, 0]])).shape
    gradserve.Size([1, 2, 3])
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 max_norm: float | None = None, norm_type: float = 2.0,
                 scale_grad_by_freq: bool = False, sparse: bool = False, _weight=None,
                 _freeze: bool = False, device=None, dtype=None, session=None) -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim = int(num_embeddings), int(embedding_dim)
        if padding_idx is not None:
            if not -self.num_embeddings <= padding_idx < self.num_embeddings:
                raise ValueError("Padding_idx must be within num_embeddings")
            padding_idx %= self.num_embeddings
        self.padding_idx, self.max_norm, self.norm_type = padding_idx, max_norm, norm_type
        self.scale_grad_by_freq, self.sparse = scale_grad_by_freq, sparse
        self.session = default_session(session)
        if _weight is None:
            self.weight = new_parameter(self.session, self.num_embeddings, self.embedding_dim,
                                        dtype=dtype)
            self.reset_parameters()
        else:
            # registered explicitly: a frozen weight is still a parameter (and in state_dict)
            self.register_parameter("weight", _weight.detach().requires_grad_(not _freeze))
        if device is not None:
            self.to(device)

    def reset_parameters(self) -> None:
        """N(0, 1), and zeros in the padding row. >>> emb.reset_parameters()"""
        init.normal_(self.weight)
        if self.padding_idx is not None:
            with no_grad():
                self.weight[self.padding_idx].fill_(0)

    @classmethod
    def from_pretrained(cls, embeddings, freeze: bool = True, padding_idx=None, **kwargs):
        """An Embedding holding `embeddings` (2-d), frozen unless freeze=False.

        >>> nn.Embedding.from_pretrained(engine.ones(4, 2)).weight.requires_grad
        False
        """
        rows, cols = embeddings.shape
        return cls(rows, cols, _weight=embeddings, _freeze=freeze, padding_idx=padding_idx,
                   **kwargs)

    def forward(self, input):
        return F.embedding(input, self.weight, self.padding_idx, self.max_norm, self.norm_type,
                           self.scale_grad_by_freq, self.sparse)

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        if self.max_norm is not None:
            s += f", max_norm={self.max_norm}"
        return s
