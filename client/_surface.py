"""The torch-shaped module surface of `gradserve`: factories that use the current session,
the module functions, dtypes, devices.

The factories (`gs.tensor`, `gs.zeros`, ..., `gs.manual_seed`) call the same method on
`default_session(session)`: the `session=` given, else the current session, else the
in-process engine. Everything else is the engine's own object (`gs.exp is engine.exp`),
since those take either tensor kind.

    >>> with gs.use(s):
    ...     y = gs.exp(gs.zeros(2, requires_grad=True)).sum()
    >>> y.session is s, y.grad_fn.name()
    (True, 'SumBackward0')
"""

from __future__ import annotations

import functools

from gradserve import engine
from gradserve.engine.seam import FactoryAPI, factory_names
from gradserve.engine.seam import random as _random

from ._current import current_session
from ._default import default_session


def _factory(name: str):
    method = getattr(FactoryAPI, name, None) or getattr(engine, name)

    @functools.wraps(method)
    def fn(*args, session=None, **kwargs):
        return getattr(default_session(session), name)(*args, **kwargs)

    fn.__module__ = "gradserve"
    fn.__qualname__ = name
    return fn


# the *_like factories follow their input (engine.zeros_like etc.), not the current session
FACTORIES = {name: _factory(name) for name in factory_names() if not name.endswith("_like")}


def normal(mean=0.0, std=1.0, size=None, *, generator=None, session=None, **kwargs):
    """torch.normal: tensor means and/or stds, or float ones with a `size` (then made on
    `session=`, else the current session, else in-process).

    >>> gs.normal(0.0, 1.0, size=(2, 3)).shape
    gradserve.Size([2, 3])
    """
    if not (hasattr(mean, "shape") or hasattr(std, "shape")):
        kwargs["home"] = default_session(session)
    return _random.normal(mean, std, size, generator=generator, **kwargs)


FACTORIES["normal"] = normal


def _is_available() -> bool:
    return _device_count() > 0


def _device_count() -> int:
    """GPUs of the current session's server; with none current, the GPUs cupy sees here."""
    session = current_session()
    if session is None:
        return engine.cuda_device_count()
    return sum(1 for d in session.server_devices if d.startswith("cuda"))


