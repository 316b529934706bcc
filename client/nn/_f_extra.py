"""More of torch.nn.functional, composed from existing tensor ops (so their gradients,
double backward included, come from those ops): hardtanh relu6 hardsigmoid hardswish mish
logsigmoid softmin prelu bilinear."""

from __future__ import annotations

from gradserve.engine import InvalidArgumentError


def hardtanh(input, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False):
    """x clamped to [min_val, max_val].

    >>> F.hardtanh(engine.tensor([-2., 0.5, 3.]))
    tensor([-1.0000,  0.5000,  1.0000])
    """
    if min_val > max_val:
        raise ValueError("min_val cannot be greater than max_val")
    out = input._op("hardtanh", input, min_val=float(min_val), max_val=float(max_val))
    return input.copy_(out) if inplace else out


def relu6(input, inplace: bool = False):
    """min(max(x, 0), 6). >>> F.relu6(engine.tensor([-1., 7.]))
    tensor([0., 6.])
    """
    return hardtanh(input, 0.0, 6.0, inplace)


def hardsigmoid(input, inplace: bool = False):
    """relu6(x + 3) / 6. >>> F.hardsigmoid(engine.tensor([0.]))
    tensor([0.5000])
    """
    out = input._op("hardsigmoid", input)
    return input.copy_(out) if inplace else out


def hardswish(input, inplace: bool = False):
    """x * relu6(x + 3) / 6. >>> F.hardswish(engine.tensor([-4., 1.]))
    tensor([-0.0000,  0.6667])
    """
    out = input._op("hardswish", input)
    return input.copy_(out) if inplace else out


def mish(input, inplace: bool = False):
    """x * tanh(softplus(x)). >>> F.mish(engine.tensor([1.]))
    tensor([0.8651])
    """
    out = input._op("mish", input)
    return input.copy_(out) if inplace else out


def logsigmoid(input):
    """log(sigmoid(x)), computed as min(x, 0) - log1p(exp(-|x|)) (torch's stable form).

    >>> F.logsigmoid(engine.tensor([0.]))
    tensor([-0.6931])
    """
    return input._op("log_sigmoid", input)


def softmin(input, dim: int | None = None, _stacklevel: int = 3, dtype=None):
    """softmax(-x) along `dim`. >>> F.softmin(engine.tensor([1., 2.]), dim=0)
    tensor([0.7311, 0.2689])
    """
    from .functional import softmax  # functional imports this module

    x = -input if dtype is None else -input.to(dtype)
    return softmax(x, dim)


def prelu(input, weight):
    """x where x > 0, weight * x elsewhere; weight has one value or one per channel (dim 1):
    torch's one PreluKernelBackward0 node, the weight viewed to broadcast as aten views it.

    >>> F.prelu(engine.tensor([-2., 3.]), engine.tensor([0.25]))
    tensor([-0.5000,  3.0000])
    """
    count = weight.numel()
    if count != 1:
        if input.dim() == 0:
            raise InvalidArgumentError("Not allow zero-dim input tensor.")
        channels = input.shape[1] if input.dim() >= 2 else 1
        if count != channels:
            raise InvalidArgumentError(
                f"Mismatch of parameter numbers and input channel size. Found parameter "
                f"numbers = {count} and channel size = {channels}.")
    if weight.dim() > 1:
        raise InvalidArgumentError("prelu: Expected `weight` to be a scalar or 1D tensor, but "
                                   f"got: ndim = {weight.dim()}")
    if input.dim() != weight.dim():
        shape = [1] * input.dim()
        if input.dim() >= 2:
            shape[1] = count
        weight = weight.reshape(shape)
    return input._op("prelu_kernel", input, weight)


def bilinear(input1, input2, weight, bias=None):
    """y_k = x1 . W_k . x2 + b_k over the last dims (weight: (out, in1, in2)): aten's
    composition, torch's one TrilinearBackward0 node between views.

    >>> F.bilinear(engine.ones(1, 2), engine.ones(1, 3), engine.ones(4, 2, 3)).shape
    gradserve.Size([1, 4])
    """
    if input1.dim() != input2.dim():
        raise InvalidArgumentError(f"bilinear(): input dimensions do not match: got "
                                   f"{input1.dim()} and {input2.dim()}")
    for i in range(input1.dim() - 1):
        if input1.shape[i] != input2.shape[i]:
            raise InvalidArgumentError(f"bilinear(): input batch dimensions do not match at "
                                       f"dim {i}: got {input1.shape[i]} and {input2.shape[i]}")
    for k, x in ((1, input1), (2, input2)):
        if x.shape[-1] != weight.shape[k]:
            raise InvalidArgumentError(f"bilinear(): input{k} size does not match weight size: "
                                       f"got {x.shape[-1]} but expected {weight.shape[k]}")
    if bias is not None and bias.shape[0] != weight.shape[0]:
        raise InvalidArgumentError(f"bilinear(): bias size does not match weight size: got "
                                   f"{bias.shape[0]} but expected {weight.shape[0]}")
    a = input1.reshape(-1, input1.shape[-1])
    b = input2.reshape(-1, input2.shape[-1])
    out = a._op("_trilinear", a, weight, b, expand1=(1, 3), expand2=(0,), expand3=(1, 2),
                sumdim=(2, 3), unroll_dim=1)
    out = out.reshape(*input1.shape[:-1], weight.shape[0])
    return out if bias is None else out + bias
