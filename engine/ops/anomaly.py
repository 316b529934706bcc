"""The `set_detect_anomaly` command: anomaly mode (core/anomaly.py) for a server session.

A client sends its process's mode before a backward when the session's differs, so the
server checks its nodes' gradients for NaN as the client asked, and its version error closes
with the anomaly hint. Outside a session (the in-process engine) it sets the process's mode.
"""

from __future__ import annotations

from ..core import anomaly as _anomaly
from ..core.errors import InvalidArgumentError
from ..core.random import session_generator
from ..core.registry import defcommand


@defcommand("set_detect_anomaly", inputs=(0, 0), outputs=(0, 0),
            attrs={"mode": ..., "check_nan": True})
def _set_detect_anomaly(inputs, attrs):
    mode, check_nan = attrs.get("mode"), attrs.get("check_nan", True)
    if type(mode) is not bool or type(check_nan) is not bool:
        raise InvalidArgumentError("set_detect_anomaly needs bool attrs 'mode' and "
                                   f"'check_nan', got {mode!r} and {check_nan!r}")
    gen = session_generator()
    if gen is None:
        _anomaly.set_anomaly_enabled(mode, check_nan)
    else:
        _anomaly.set_session(gen, mode, check_nan)
    return ()
