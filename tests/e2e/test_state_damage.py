"""A damaged state file on a real server (`gradserve serve --state-dir`): the session's every
later call hears a clear "lost" naming it (never INTERNAL, never wrong values); the file is
moved aside; an intact file next to it still restores."""

from __future__ import annotations

import time

import gradserve as gs
import pytest
from gradserve import engine
from gradserve.server._sessions import Session
from gradserve.server._state import StateDir


def _write(state_dir, sid: str) -> None:
    s = Session(sid, "anonymous", "cpu", time.monotonic)
    s.tensors["w"] = engine.arange(32.0)
    StateDir(state_dir, "an-old-server").save(s)


@pytest.mark.parametrize("damage", ["entry bit flip", "header truncated"])
def test_a_damaged_state_file_is_lost_clearly_on_every_call(serve, tmp_path, damage):
    bad, good = "d" * 22, "g" * 22
    _write(tmp_path, bad)
    _write(tmp_path, good)
    path = tmp_path / f"{bad}.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[:-5] + bytes([data[-5] ^ 0x04]) + data[-4:]
                     if damage == "entry bit flip" else data[:40])
    served = serve("--state-dir", str(tmp_path))
    with gs.connect(served.address) as client:
        for _ in range(2):  # the first call finds it damaged, later ones hear the same
            with pytest.raises(gs.SessionLostError) as info:
                client.attach(bad)
            assert info.value.reason == "lost", info.value
            assert bad in str(info.value) and "failed its checks" in str(info.value)
        restored = client.attach(good)
        assert restored.get(next(iter(restored.tensors()))).tolist() == [
            float(i) for i in range(32)]
    assert (tmp_path / f"{bad}.damaged").exists() and not path.exists()
    assert not any(e.get("level") == "error" for e in served.events())
