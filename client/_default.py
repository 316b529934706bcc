"""Where new tensors go when the caller names no session: the one place that decides.

Layers (`gs.nn`), initialisers (`gs.nn.init`), `gs.load` and the `gs.*` factories all call
`default_session`: the session given, else the current session (`with client.session() as
s:`, `with gs.use(s):`; see `_current`), else the in-process engine. `session_of` answers the
other question: which session an existing tensor lives on (so a helper can make more
tensors next to it).
"""

from __future__ import annotations

import numpy as np
from gradserve import engine

from ._current import current_session


def default_session(session=None):
    """`session` itself, or, for None, the current session, or with none current the
    in-process engine (`gradserve.engine`).

    >>> from gradserve._default import default_session
    >>> default_session(None).__name__
    'gradserve.engine'
    """
    if session is None:
        session = current_session()
        if session is None:
            return engine
    return session


def session_of(tensor):
    """The session (or the engine module) that holds `tensor`.

    >>> from gradserve import engine
    >>> session_of(engine.ones(1)).__name__
    'gradserve.engine'
    """
    if isinstance(tensor, engine.Tensor):
        return engine
    for name in ("session", "_session"):
        found = getattr(tensor, name, None)
        if found is not None:
            return found
    raise TypeError(f"can't tell which session a {type(tensor).__name__} lives on")


def new_like(tensor, factory: str, *args, dtype=None):
    """A new tensor from the factory `factory` ("zeros", "ones", "arange", "rand", ...) of
    the session that holds `tensor`, on its device, with `tensor`'s dtype unless given.

    >>> from gradserve import engine
    >>> new_like(engine.ones(2, dtype=engine.float64), "zeros", 3)
    tensor([0., 0., 0.], dtype=gradserve.float64)
    """
    session = session_of(tensor)
    kw = {"dtype": tensor.dtype if dtype is None else dtype}
    if session is engine:  # a remote session's factories make tensors on its own device
        kw["device"] = tensor.device
    return getattr(session, factory)(*args, **kw)


def values_of(tensors) -> list:
    """numpy copies of many tensors' values (detached; numpy arrays pass through as
    copies), one wait per remote session rather than one per tensor.

    >>> from gradserve import engine
    >>> values_of([engine.ones(2), engine.zeros(1)])
    [array([1., 1.], dtype=float32), array([0.], dtype=float32)]
    """
    tensors = list(tensors)
    out: list = [None] * len(tensors)
    remote: dict = {}
    for i, t in enumerate(tensors):
        if isinstance(t, np.ndarray):
            out[i] = np.array(t, copy=True)
        elif isinstance(t, engine.Tensor):
            out[i] = np.array(t.detach()._host(), copy=True)
        else:
            remote.setdefault(session_of(t), []).append(i)
    for session, where in remote.items():
        batch = [tensors[i] for i in where]
        fetch = getattr(session, "fetch", None)  # stand-ins without one: a value at a time
        fetched = fetch(*batch) if fetch else [np.array(t.detach().numpy()) for t in batch]
        for i, value in zip(where, fetched, strict=True):
            out[i] = value
    return out
