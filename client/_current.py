"""The current session: where `gs.tensor`, `gs.zeros`, ... `gs.load` and new `gs.nn` modules
put tensors when the caller names no session.

Inside `with client.session() as s:` (which closes `s` at the end) and `with gs.use(s):`
(which does not), `s` is current in that thread; leaving the block makes the previous one
current again. With none current, tensors are made in-process by the engine. A torch script
therefore ports by replacing `torch` with `gs` and running it inside a session.

    >>> with gs.use(s):
    ...     x = gs.ones(2)
    >>> x.session is s, type(gs.ones(2, session=gs.engine)).__name__
    (True, 'Tensor')
"""

from __future__ import annotations

import threading


class _Stack(threading.local):
    def __init__(self) -> None:
        self.sessions: list = []


_stack = _Stack()


def current_session():
    """The innermost current session of this thread, or None.

    >>> with client.session() as s2:
    ...     gs.current_session() is s2
    True
    """
    sessions = _stack.sessions
    return sessions[-1] if sessions else None


def push(session) -> None:
    _stack.sessions.append(session)


def pop(session) -> None:
    sessions = _stack.sessions
    for i in range(len(sessions) - 1, -1, -1):  # the innermost entry of this session
        if sessions[i] is session:
            del sessions[i]
            return


class use:  # noqa: N801  (a function-like context manager, as torch's)
    """Make `session` current in this thread for a `with` block (it stays open after).

    >>> with gs.use(s):
    ...     gs.tensor([1., 2.]).session is s
    True
    """

    def __init__(self, session) -> None:
        self._session = session

    def __enter__(self):
        push(self._session)
        return self._session

    def __exit__(self, *exc) -> None:
        pop(self._session)
