"""nn.utils.rnn's packed sequences against torch, in-process and on a real session: packing
and unpacking (values, batch sizes, orders, lengths, gradients, grad_fn names), LSTM/GRU/RNN
over a PackedSequence with torch's weights (outputs, final states and every gradient), the
errors torch raises, and float64 gradchecks of the packing op to second order."""

from __future__ import annotations

import gradserve.nn as nn
import numpy as np
import pytest
import torch
from gradserve import engine
from gradserve.engine.gradcheck import check_grads
from gradserve.nn.utils import rnn as R
from torch.nn.utils import rnn as TR

RNG = np.random.default_rng(3)


@pytest.fixture(params=["engine", "remote"])
def home(request):
    return engine if request.param == "engine" else request.getfixturevalue("session")


def _leaf(home, a):
    return home.tensor(a, dtype=engine.float64, requires_grad=True)


CASES = [
    ([4, 2, 2], {}),
    ([2, 4, 1], {"enforce_sorted": False}),
    ([3, 3, 1, 3], {"enforce_sorted": False, "batch_first": True}),
    ([1], {"batch_first": True}),
]


@pytest.mark.parametrize("lengths,kw", CASES)
def test_pack_and_pad_as_torch(home, lengths, kw):
    batch_first = kw.get("batch_first", False)
    shape = (len(lengths), 5, 2) if batch_first else (5, len(lengths), 2)
    a = RNG.standard_normal(shape)
    x, tx = _leaf(home, a), torch.tensor(a, requires_grad=True)
    packed = R.pack_padded_sequence(x, lengths, **kw)
    tpacked = TR.pack_padded_sequence(tx, torch.tensor(lengths), **kw)
    assert isinstance(packed, R.PackedSequence) and packed._fields == tpacked._fields
    np.testing.assert_array_equal(packed.data.detach().numpy(), tpacked.data.detach().numpy())
    for field in ("batch_sizes", "sorted_indices", "unsorted_indices"):
        ours, theirs = getattr(packed, field), getattr(tpacked, field)
        assert (ours is None) == (theirs is None), field
        if theirs is not None:
            assert ours.tolist() == theirs.tolist(), field
    assert type(packed.data.grad_fn).__name__ == "PackPaddedSequenceBackward0"
    out, out_lengths = R.pad_packed_sequence(packed, batch_first, padding_value=-2.0,
                                             total_length=6)
    tout, tlengths = TR.pad_packed_sequence(tpacked, batch_first, padding_value=-2.0,
                                            total_length=6)
    np.testing.assert_array_equal(out.detach().numpy(), tout.detach().numpy())
    assert out_lengths.tolist() == tlengths.tolist()
    assert type(out.grad_fn).__name__ == type(tout.grad_fn).__name__
    w = RNG.standard_normal(tuple(tout.shape))
    (out * home.tensor(w, dtype=engine.float64)).sum().backward()
    (tout * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-14)


def test_sequence_helpers(home):
    seqs = [RNG.standard_normal((n, 3)) for n in (2, 5, 3)]
    ours = [_leaf(home, s) for s in seqs]
    theirs = [torch.tensor(s) for s in seqs]
    packed = R.pack_sequence(ours, enforce_sorted=False)
    tpacked = TR.pack_sequence(theirs, enforce_sorted=False)
    np.testing.assert_array_equal(packed.data.detach().numpy(), tpacked.data.numpy())
    for got, want in zip(R.unpack_sequence(packed), TR.unpack_sequence(tpacked), strict=True):
        np.testing.assert_array_equal(got.detach().numpy(), want.numpy())
    padded = R.pad_sequence(ours, batch_first=True)
    lengths = [2, 5, 3]
    for got, want in zip(R.unpad_sequence(padded, lengths, batch_first=True),
                         TR.unpad_sequence(TR.pad_sequence(theirs, batch_first=True),
                                           torch.tensor(lengths), batch_first=True),
                         strict=True):
        np.testing.assert_array_equal(got.detach().numpy(), want.numpy())
    perm = home.tensor([2, 0, 3, 1])
    assert R.invert_permutation(perm).tolist() == TR.invert_permutation(
        torch.tensor([2, 0, 3, 1])).tolist()
    assert R.invert_permutation(None) is None
    moved = packed.to(engine.float32)
    assert moved.data.dtype == engine.float32 and moved.batch_sizes is packed.batch_sizes
    assert packed.double() is packed and not packed.is_cuda


def test_packing_sends_no_wait(session):
    waits = session.stats.waits
    x = session.randn(6, 3, 2, requires_grad=True)
    packed = R.pack_padded_sequence(x, [2, 6, 4], enforce_sorted=False)
    out, lengths = R.pad_packed_sequence(packed, batch_first=True)
    lstm_out, _ = nn.LSTM(2, 3, session=session)(packed)
    assert session.stats.waits == waits
    assert lengths.tolist() == [2, 6, 4] and tuple(out.shape) == (3, 6, 2)
    assert tuple(lstm_out.data.shape) == (12, 3)


LAYERS = [
    ("lstm", lambda m, **kw: m.LSTM(3, 4, **kw), True),
    ("lstm-2-bidir", lambda m, **kw: m.LSTM(3, 4, num_layers=2, bidirectional=True, **kw), True),
    ("gru-bidir", lambda m, **kw: m.GRU(3, 4, bidirectional=True, **kw), False),
    ("rnn-relu-2", lambda m, **kw: m.RNN(3, 4, num_layers=2, nonlinearity="relu", **kw), False),
]


@pytest.mark.parametrize("name,make,lstm", LAYERS, ids=[c[0] for c in LAYERS])
@pytest.mark.parametrize("given_state", [False, True])
def test_recurrent_layers_take_packed_input(home, name, make, lstm, given_state):
    torch.manual_seed(0)
    theirs = make(torch.nn).double()
    ours = make(nn, session=home).to(engine.float64)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    lengths = [3, 5, 1, 4]
    a = RNG.standard_normal((5, 4, 3))
    x, tx = _leaf(home, a), torch.tensor(a, requires_grad=True)
    packed = R.pack_padded_sequence(x, lengths, enforce_sorted=False)
    tpacked = TR.pack_padded_sequence(tx, lengths, enforce_sorted=False)
    args, targs = [], []
    if given_state:
        layers = theirs.num_layers * (2 if theirs.bidirectional else 1)
        states = [RNG.standard_normal((layers, 4, 4)) for _ in range(2 if lstm else 1)]
        hs = [_leaf(home, s) for s in states]
        ths = [torch.tensor(s, requires_grad=True) for s in states]
        args, targs = [tuple(hs) if lstm else hs[0]], [tuple(ths) if lstm else ths[0]]
    out, state = ours(packed, *args)
    tout, tstate = theirs(tpacked, *targs)
    assert isinstance(out, R.PackedSequence)
    assert out.batch_sizes.tolist() == tout.batch_sizes.tolist()
    finals = list(state) if lstm else [state]
    tfinals = list(tstate) if lstm else [tstate]
    loss, tloss = 0, 0
    for o, t in zip([out.data, *finals], [tout.data, *tfinals], strict=True):
        np.testing.assert_allclose(o.detach().numpy(), t.detach().numpy(), rtol=1e-10,
                                   atol=1e-12)
        w = RNG.standard_normal(tuple(t.shape))
        loss = loss + (o * home.tensor(w, dtype=engine.float64)).sum()
        tloss = tloss + (t * torch.tensor(w)).sum()
    loss.backward()
    tloss.backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-9, atol=1e-12)
    if given_state:
        for h, th in zip(hs, ths, strict=True):
            np.testing.assert_allclose(h.grad.numpy(), th.grad.numpy(), rtol=1e-9, atol=1e-12)
    tparams = dict(theirs.named_parameters())
    for pname, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), tparams[pname].grad.numpy(), rtol=1e-9,
                                   atol=1e-12, err_msg=pname)


@pytest.mark.parametrize("lengths,batch_first,message", [
    ([3, 0, 0], False, "Length of all samples has to be greater than 0, but found an element "
                       "in 'lengths' that is <= 0"),
    ([2, 3, 1], False, "`lengths` array must be sorted in decreasing order when "
                       "`enforce_sorted` is True"),
    ([2, 1], False, r"Expected `len\(lengths\)` to be equal to batch_size, but got 2 "
                    r"\(batch_size=3\)"),
    ([2, 2, 1], True, r"Expected `len\(lengths\)` to be equal to batch_size, but got 3 "
                      r"\(batch_size=4\)"),
])
def test_errors_are_torchs(home, lengths, batch_first, message):
    a = np.zeros((4, 3, 2))
    with pytest.raises(RuntimeError, match=message):
        TR.pack_padded_sequence(torch.tensor(a), lengths, batch_first)
    with pytest.raises(RuntimeError, match=message):
        R.pack_padded_sequence(home.tensor(a), lengths, batch_first)


def test_total_length_too_short(home):
    packed = R.pack_padded_sequence(home.zeros(4, 2), [4, 1])
    message = ("Expected total_length to be at least the length of the longest sequence in "
               "input, but got total_length=3 and max sequence length being 4")
    with pytest.raises(ValueError, match=message):
        R.pad_packed_sequence(packed, total_length=3)
    with pytest.raises(ValueError, match=message):
        TR.pad_packed_sequence(TR.pack_padded_sequence(torch.zeros(4, 2), [4, 1]),
                               total_length=3)


@pytest.mark.parametrize("batch_first", [False, True])
def test_gradcheck_first_and_second_order(batch_first):
    x = engine.tensor(RNG.standard_normal((4, 3, 2)), dtype=engine.float64, requires_grad=True)
    lengths = [3, 3, 2, 1] if batch_first else [4, 2, 1]
    check_grads(lambda x: x._op("pack_padded_sequence", x, lengths=lengths,
                                batch_first=batch_first), [x], order=2)

    def round_trip(x):
        packed = R.pack_padded_sequence(x, lengths, batch_first, enforce_sorted=True)
        return R.pad_packed_sequence(packed, batch_first)[0] * x

    check_grads(round_trip, [x], order=2)
