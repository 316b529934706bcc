"""The spatial layers API.md section 7 adds, against torch on both tensor kinds: values and
gradients of conv3d, transposed convolutions, adaptive max pooling, interpolate (nearest,
linear, bilinear, align_corners), unfold/fold, pixel (un)shuffle, normalize,
cosine_similarity and pairwise_distance; the modules' shapes, initialisation and reprs.
(The conv_transpose op's float64 gradchecks: tests/engine/test_gradcheck.py.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch  # the oracle
import torch.nn.functional as TF

rng = np.random.default_rng(0)


def R(*shape):
    return rng.standard_normal(shape)


X4, X3, X5 = R(2, 4, 5, 6), R(2, 4, 7), R(1, 2, 4, 5, 3)
W2t, W3 = R(4, 3, 3, 2), R(3, 2, 2, 3, 2)
C0 = R(3)
C1 = R(4, 3, 3)
C2 = R(2, 12, 18)
C3 = R(2, 8, 3, 4)
C4 = R(2, 2, 4, 6)
C5 = R(2, 4, 7)
C6 = R(5, 3)
CASES = {
 "conv3d": lambda F, t: F.conv3d(t(X5), t(W3), padding=1, stride=(1, 2, 1)),
 "convT2d": lambda F, t: F.conv_transpose2d(t(X4), t(W2t), stride=2, padding=1, output_padding=1),
 "convT2d_b": lambda F, t: F.conv_transpose2d(t(X4), t(W2t), t(C0), stride=(1, 2), dilation=2),
 "convT1d_g": lambda F, t: F.conv_transpose1d(t(X3), t(C1), groups=2, stride=3),
 "amax_div": lambda F, t: F.adaptive_max_pool2d(t(X4[:, :, :4, :6]), (2, 3)),
 "amax_odd": lambda F, t: F.adaptive_max_pool2d(t(X4), (3, 4)),
 "near_size": lambda F, t: F.interpolate(t(X4), size=(7, 9)),
 "near_scale": lambda F, t: F.interpolate(t(X4), scale_factor=1.7),
 "lin": lambda F, t: F.interpolate(t(X3), size=11, mode="linear"),
 "lin_ac": lambda F, t: F.interpolate(t(X3), size=11, mode="linear", align_corners=True),
 "bil": lambda F, t: F.interpolate(t(X4), scale_factor=2, mode="bilinear"),
 "bil_ac": lambda F, t: F.interpolate(t(X4), size=(3, 8), mode="bilinear", align_corners=True),
 "bil_down": lambda F, t: F.interpolate(t(X4), scale_factor=0.6, mode="bilinear"),
 "unfold": lambda F, t: F.unfold(t(X4), (2, 3), padding=1, stride=(2, 1)),
 "fold": lambda F, t: F.fold(t(C2), (5, 6), (2, 3), padding=1, stride=(2, 1)),
 "pshuf": lambda F, t: F.pixel_shuffle(t(C3), 2),
 "punshuf": lambda F, t: F.pixel_unshuffle(t(C4), 2),
 "normalize": lambda F, t: F.normalize(t(X4), dim=2),
 "cos": lambda F, t: F.cosine_similarity(t(X3), t(C5), dim=1),
 "pdist": lambda F, t: F.pairwise_distance(t(C6), t(C6)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_functional_matches_torch(M, name):
    fn = CASES[name]
    ours_leaves, their_leaves = [], []

    def ours(x):
        ours_leaves.append(M.tensor(x, requires_grad=True))
        return ours_leaves[-1]

    def theirs(x):
        their_leaves.append(torch.tensor(x, requires_grad=True))
        return their_leaves[-1]

    o, t = fn(M.nn.functional, ours), fn(TF, theirs)
    assert tuple(o.shape) == tuple(t.shape)
    np.testing.assert_allclose(o.detach().cpu().numpy(), t.detach().numpy(), atol=1e-10)
    weights = np.linspace(-1, 1, t.numel()).reshape(t.shape)
    (o * M.tensor(weights)).sum().backward()
    (t * torch.tensor(weights)).sum().backward()
    for a, b in zip(ours_leaves, their_leaves, strict=True):
        np.testing.assert_allclose(a.grad.cpu().numpy(), b.grad.numpy(), atol=1e-9)


MODULES = [
    ("ConvTranspose2d", (4, 3, 3), dict(stride=2, padding=1, output_padding=1), (2, 4, 5, 6)),
    ("ConvTranspose1d", (4, 6, 3), dict(groups=2, stride=3, bias=False), (2, 4, 7)),
    ("Conv3d", (2, 3, 2), dict(padding=1), (1, 2, 4, 5, 3)),
]


@pytest.mark.parametrize("name,args,kwargs,shape", MODULES, ids=[m[0] for m in MODULES])
def test_modules_match_torch(M, name, args, kwargs, shape):
    theirs = getattr(torch.nn, name)(*args, **kwargs).double()
    ours = getattr(M.nn, name)(*args, **kwargs, dtype=M.float64)
    assert repr(ours) == repr(theirs)
    assert ours.weight.shape == tuple(theirs.weight.shape)
    with M.no_grad():  # torch's weights, so the outputs compare
        for p, q in zip(ours.parameters(), theirs.parameters(), strict=True):
            p.copy_(M.tensor(q.detach().numpy()))
    x = np.random.default_rng(1).standard_normal(shape)
    np.testing.assert_allclose(ours(M.tensor(x)).detach().cpu().numpy(),
                               theirs(torch.tensor(x)).detach().numpy(), atol=1e-10)
    bound = 1 / np.sqrt(ours.weight.shape[1] * np.prod(ours.kernel_size))
    assert float(ours.weight.abs().max()) <= bound + 1e-12  # kaiming_uniform(a=sqrt(5))


def test_conv_transpose_output_size(M):
    x = np.ones((1, 4, 5, 5))
    ours, theirs = M.nn.ConvTranspose2d(4, 2, 3, stride=2), torch.nn.ConvTranspose2d(4, 2, 3,
                                                                                   stride=2)
    assert ours(M.tensor(x, dtype=M.float32), output_size=(12, 12)).shape == tuple(
        theirs(torch.tensor(x, dtype=torch.float32), output_size=(12, 12)).shape)


@pytest.mark.parametrize("name,args,x", [
    ("Upsample", dict(scale_factor=2, mode="bilinear"), (1, 2, 3, 4)),
    ("Upsample", dict(size=(5, 7)), (1, 2, 3, 4)),
    ("AdaptiveMaxPool2d", dict(output_size=(2, 3)), (1, 2, 5, 7)),
    ("Unfold", dict(kernel_size=2, stride=2), (1, 2, 4, 6)),
    ("Fold", dict(output_size=(4, 6), kernel_size=2, stride=2), (1, 8, 6)),
    ("PixelShuffle", dict(upscale_factor=2), (1, 8, 2, 3)),
    ("PixelUnshuffle", dict(downscale_factor=2), (1, 2, 4, 6)),
])
def test_parameterless_modules_match_torch(M, name, args, x):
    data = np.random.default_rng(2).standard_normal(x)
    ours, theirs = getattr(M.nn, name)(**args), getattr(torch.nn, name)(**args)
    assert repr(ours) == repr(theirs)
    np.testing.assert_allclose(ours(M.tensor(data)).cpu().numpy(),
                               theirs(torch.tensor(data)).numpy(), atol=1e-12)


def test_similarity_modules_and_dropout2d(M):
    a, b = np.random.default_rng(3).standard_normal((2, 4, 3))
    for name, args in (("CosineSimilarity", {}), ("PairwiseDistance", dict(p=1.0))):
        ours, theirs = getattr(M.nn, name)(**args), getattr(torch.nn, name)(**args)
        np.testing.assert_allclose(ours(M.tensor(a), M.tensor(b)).cpu().numpy(),
                                   theirs(torch.tensor(a), torch.tensor(b)).numpy(), atol=1e-12)
    x = M.ones(8, 16, 3, 3)
    y = M.nn.Dropout2d(0.5)(x).cpu().numpy()
    per_channel = y.reshape(8, 16, 9)
    assert np.all(per_channel.min(-1) == per_channel.max(-1))  # whole channels
    assert set(np.unique(y)) <= {0.0, 2.0} and 0 < (y == 0).mean() < 1
    assert M.nn.Dropout2d(0.5).eval()(x).cpu().numpy().min() == 1.0
