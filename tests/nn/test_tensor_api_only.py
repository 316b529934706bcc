"""nn and optim touch tensors only through the public tensor API, so they run unchanged on
remote tensors. ProxyTensor (conftest.py) stands in for RemoteTensor: it forwards ops to the
engine but logs each op, each value fetch (a round trip on a real server) and raises if an
engine tensor leaks into its graph."""

import gradserve.nn as nn
import gradserve.nn.functional as F
import gradserve.optim as optim
import numpy as np
from gradserve import engine


def _model(session, seed=0):
    session.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 16, session=session), nn.ReLU(),
                         nn.Linear(16, 3, session=session))


def _data(session):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0)
    return session.tensor(x), session.tensor(y)


def test_parameters_are_created_on_the_session(fake_session):
    s = fake_session
    fc = nn.Linear(5, 2, session=s)
    assert fc.session is s
    for p in fc.parameters():
        assert isinstance(p, s.tensor_type) and p.session is s
        assert p.is_leaf and p.requires_grad
    # drawn there in place (torch's uniform_): no upload, no fetch
    assert s.ops == ["empty", "uniform_", "empty", "uniform_"]
    assert s.uploads == 0 and s.fetches == 0


def test_training_step_sends_torchs_ops_per_layer_and_fetches_nothing(fake_session):
    s = fake_session
    model = _model(s)
    x, y = _data(s)
    opt = optim.SGD(model.parameters(), lr=0.1)
    s.ops.clear()
    loss = F.cross_entropy(model(x), y)
    # torch's graph: a Linear is addmm over weight.t() (a view), as torch records it
    assert s.ops == ["t", "addmm", "relu", "t", "addmm", "log_softmax", "nll_loss"]
    loss.backward()
    s.ops.clear()
    opt.step()
    assert s.ops == ["optim_sgd_"] * 4  # p -= lr * g, one op per parameter
    assert s.fetches == 0


def test_training_on_the_session_fetches_only_what_is_asked(fake_session):
    s = fake_session
    model = _model(s)
    x, y = _data(s)
    loss_fn = nn.CrossEntropyLoss()
    for opt in (optim.SGD(model.parameters(), lr=0.2, momentum=0.9, weight_decay=1e-4),
                optim.Adam(model.parameters(), lr=0.01, weight_decay=1e-4)):
        first = None
        for _ in range(30):
            loss = loss_fn(model(x), y)
            first = first if first is not None else loss
            opt.zero_grad()
            loss.backward()
            opt.step()
        assert s.fetches == 0
        assert loss.item() < first.item()
        s.fetches = 0


def test_same_results_as_in_process(fake_session):
    """The code path is identical: a session model ends exactly where an engine model does."""
    results = []
    for session in (engine, fake_session):
        model = _model(session, seed=3)
        x, y = _data(session)
        opt = optim.Adam(model.parameters(), lr=0.01)
        for _ in range(5):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
        results.append(model.state_dict())
    for key in results[0]:
        np.testing.assert_array_equal(results[0][key], results[1][key])


def test_state_dict_round_trip_on_the_session(fake_session):
    s = fake_session
    model, other = _model(s, seed=1), _model(s, seed=2)
    s.fetches = s.uploads = 0
    sd = model.state_dict()
    assert s.fetches == 4  # one fetch per parameter
    other.load_state_dict(sd)
    assert s.uploads == 4
    for p in other.parameters():
        assert isinstance(p, s.tensor_type) and p.is_leaf and p.requires_grad
    for key, value in other.state_dict().items():
        np.testing.assert_array_equal(value, sd[key])


def test_zero_grad_and_dropout_on_the_session(fake_session):
    s = fake_session
    model = nn.Sequential(nn.Linear(3, 3, session=s), nn.Dropout(0.5))
    x = s.randn(8, 3)
    s.ops.clear()
    model(x).sum().backward()
    assert "dropout_mask" in s.ops
    model.zero_grad(set_to_none=False)
    assert not model[0].weight.grad.numpy().any()
    model.eval()
    s.ops.clear()
    model(x)
    assert s.ops == ["t", "addmm"]  # the Linear alone: eval-mode dropout records nothing
