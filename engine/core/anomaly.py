"""Anomaly mode: torch.autograd.detect_anomaly / set_detect_anomaly.

While it is on, every node made records the Python stack of the forward call that made it;
a node whose backward raises warns "Error detected in <name>" with that stack before the
error goes on, and with `check_nan` a node whose backward returns NaN raises. The mode is
process-wide, as torch's (its flag is a global, not per thread). A server session has its
own: its client sends it (the `set_detect_anomaly` command) before a backward that needs it,
and it is kept with the session's other settings on its generator (`Generator.anomaly`).

Nothing here is on the path of a program without the mode: while the process's mode is on,
Node.__init__ and Node.check_saved are wrapped (`_instrument`) to record stacks and warn,
and a backward asks `caller` once for the function that runs each node.
"""

from __future__ import annotations

import contextlib
import re
import sys
import traceback
import warnings
import weakref

from .errors import VERSION_HINT, AutogradError

ON = False  # the process's mode
CHECK_NAN = True
_PLAIN: dict = {}  # Node's own methods while they are wrapped

# torch's closing sentence of the in-place version error while anomaly mode is on
ANOMALY_HINT = (
    " Hint: the backtrace further above shows the operation that failed to compute its "
    "gradient. The variable in question was changed in there or anywhere later. Good luck!"
)
ENABLED_WARNING = (
    "Anomaly Detection has been enabled. This mode will increase the runtime and should only "
    "be enabled for debugging."
)

_STACKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # node -> its forward stack


def is_anomaly_enabled() -> bool:
    return ON


def is_anomaly_check_nan_enabled() -> bool:
    return CHECK_NAN


def set_anomaly_enabled(enabled: bool, check_nan: bool = True) -> None:
    """torch.set_anomaly_enabled: the process's mode (a server session's: `set_session`)."""
    global ON, CHECK_NAN
    ON, CHECK_NAN = bool(enabled), bool(check_nan)
    _instrument(ON)


def _instrument(on: bool) -> None:
    from .autograd import Node  # autograd imports this module

    if on and not _PLAIN:
        init = _PLAIN["__init__"] = Node.__init__
        check = _PLAIN["check_saved"] = Node.check_saved

        def __init__(self, *args, **kwargs) -> None:
            init(self, *args, **kwargs)
            record(self)

        def check_saved(self) -> None:  # a saved tensor changed in place: this node failed
            try:
                check(self)
            except Exception:
                warn_error(self)
                raise

        Node.__init__, Node.check_saved = __init__, check_saved
    elif not on and _PLAIN:
        Node.__init__, Node.check_saved = _PLAIN.pop("__init__"), _PLAIN.pop("check_saved")


def set_session(generator, enabled: bool, check_nan: bool) -> None:
    """A server session's mode, kept on its generator (None: off)."""
    generator.anomaly = bool(check_nan) if enabled else None


def _session():
    global _session
    from .random import session_generator  # random imports the registry: not at load time

    _session = session_generator
    return session_generator()


def active() -> bool | None:
    """None when anomaly mode is off for this backward; else whether it checks for NaN.
    In a server session, the session's mode; in-process (and in a client), the process's."""
    gen = _session()
    if gen is not None:
        return gen.anomaly
    return CHECK_NAN if ON else None


class set_detect_anomaly:
    """torch.autograd.set_detect_anomaly: switch anomaly mode on or off at once; as a
    context manager, the previous mode comes back on exit.

    >>> with set_detect_anomaly(True, check_nan=False):
    ...     print(is_anomaly_enabled(), is_anomaly_check_nan_enabled())
    True False
    """

    def __init__(self, mode: bool, check_nan: bool = True) -> None:
        self.prev, self.prev_check_nan = ON, CHECK_NAN
        set_anomaly_enabled(mode, check_nan)

    def __enter__(self) -> None:
        pass

    def __exit__(self, *exc) -> None:
        set_anomaly_enabled(self.prev, self.prev_check_nan)


class detect_anomaly:
    """torch.autograd.detect_anomaly: a context manager that turns anomaly mode on (it warns
    that the mode is slow, as torch does, when made)."""

    def __init__(self, check_nan: bool = True) -> None:
        self.prev, self.prev_check_nan = ON, CHECK_NAN
        self.check_nan = check_nan
        warnings.warn(ENABLED_WARNING, stacklevel=2)

    def __enter__(self) -> None:
        set_anomaly_enabled(True, self.check_nan)

    def __exit__(self, *exc) -> None:
        set_anomaly_enabled(self.prev, self.prev_check_nan)


def record(node) -> None:
    """Keep the stack of the forward call that made `node` (the package's innermost frames
    left out). A server session's nodes keep none: their forward's line is the client's,
    and its image of the graph keeps it (a server sharing the client's process skips them)."""
    if _session() is not None:
        return
    # the package's own innermost frames are left out: the stack ends at the user's line,
    # as torch's ends where Python called into its C++ (frames of the package further out,
    # a Module's forward, stay, as torch's Python frames do)
    f = sys._getframe(1)
    while f is not None and f.f_globals.get("__name__", "").partition(".")[0] == "gradserve":
        f = f.f_back
    _STACKS[node] = traceback.extract_stack(f) if f is not None else []


def warn_error(node) -> None:
    """torch's warning for a node whose backward raised: where its forward was called
    (in a client or in-process; a server's session raises the error alone)."""
    if _session() is not None:
        return
    frames = _STACKS.get(node)
    name = node.name()
    if frames is None:
        msg = (f"Error detected in {name}. No forward pass information available. Enable "
               "detect anomaly during forward pass for more information.")
    else:
        msg = (f"Error detected in {name}. Traceback of forward call that caused the error:\n"
               + "".join(traceback.format_list(frames)))
    warnings.warn(msg, UserWarning, stacklevel=2)


_NAN = re.compile(r"Function '(\w+)' returned nan values in its \d+th output\.")


@contextlib.contextmanager
def server_errors(on: bool, nodes):
    """Around a remote backward over the client's image of the graph (`nodes`): a node
    the server found returning NaN gets torch's warning here, where its forward's stack is.
    The server's error names the node's type only, so the warning needs the image to hold
    one node of that name (else the error goes on alone)."""
    try:
        yield
    except AutogradError as e:
        match = _NAN.fullmatch(str(e)) if on else None
        if match:
            named = [n for n in nodes if n.name() == match.group(1)]
            if len(named) == 1:
                warn_error(named[0])
        raise


def version_hint() -> str:
    """The in-place version error's closing sentence for the mode now on."""
    return VERSION_HINT if active() is None else ANOMALY_HINT


def caller(fn):
    """What a backward runs each node with: `fn(node, out_grads)` itself when the mode is
    off; else `fn` where a failure warns where the node's forward was called, and with
    `check_nan` a NaN in any gradient it returns raises torch's error (the index counted over
    all the node's outputs, as torch's)."""
    check_nan = active()
    if check_nan is None:
        return fn
    return lambda node, out_grads: _call(fn, node, out_grads, check_nan)


def _call(fn, node, out_grads, check_nan: bool):
    try:
        in_grads = fn(node, out_grads)
        if check_nan:
            for i, g in enumerate(in_grads):
                if g is not None and _has_nan(g):
                    raise AutogradError(
                        f"Function '{node.name()}' returned nan values in its {i}th output.")
    except Exception:
        warn_error(node)
        raise
    return in_grads


def _has_nan(g) -> bool:
    # through the engine's ops: they run on g's device, made current
    return g.dtype.is_floating_point and g.isnan().any().item()
