"""The shared state dir (`--state-dir`): sessions a draining server wrote, for another server to
restore under the same id. Files, per session id:

  <id>.moving        JSON: a draining server (instance, deadline) will write this session
  <id>.safetensors   the session (`seam.pack`), its description and epoch in the metadata
  <id>.lost          JSON: the draining server could not write it (why, instance)

Every file appears by an atomic rename, so a reader never sees half of one; a restoring
server claims the state by renaming it first, so two servers never restore the same session.
Only ids of the server's own alphabet reach a path (see SESSION_ID).
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import re
import secrets
import time
from collections.abc import Iterator
from typing import NamedTuple

from gradserve.engine import seam
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

from ._sessions import Session

SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_META_KEY = "gradserve"
STALE_AFTER = 10.0  # seconds past a .moving marker's deadline before its writer counts as gone


class Stored(NamedTuple):
    """What the state dir says about a session id."""

    state: str  # "moved" (restorable), "moving" (not written yet), "lost"
    epoch: int = 0
    details: str = ""
    owner: str = ""


class StateDir:
    """One server's view of the shared state dir; `instance` names the server in its files."""

    def __init__(self, path: str | os.PathLike, instance: str) -> None:
        self.path = pathlib.Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.instance = instance

    def _file(self, session_id: str, suffix: str) -> pathlib.Path:
        return self.path / f"{session_id}{suffix}"

    def _write(self, target: pathlib.Path, write) -> None:
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            write(tmp)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)

    def _write_json(self, target: pathlib.Path, data: dict) -> None:
        self._write(target, lambda tmp: tmp.write_text(json.dumps(data)))

    # -- the draining server ---------------------------------------------------------------
    def mark_moving(self, session_ids, deadline: float) -> None:
        """Announce that these sessions will be written by `deadline` (wall clock)."""
        for sid in session_ids:
            self._write_json(self._file(sid, ".moving"),
                             {"instance": self.instance, "deadline": deadline})

    def save(self, session: Session) -> tuple[int, int]:
        """Write `session` (quiet: `seam.NotQuiet` otherwise) with the next epoch; the
        caller holds its lock. Returns (epoch, bytes written)."""
        arrays, meta = seam.pack(session.tensors, session.device, session.generator)
        epoch = session.epoch + 1
        meta.update(session=session.id, owner=session.owner, epoch=epoch,
                    applied_seq=session.applied_seq, instance=self.instance,
                    written=time.time())
        self._write(self._file(session.id, ".safetensors"),
                    lambda tmp: save_file(arrays, str(tmp),
                                          metadata={_META_KEY: json.dumps(meta)}))
        self._file(session.id, ".moving").unlink(missing_ok=True)
        return epoch, seam.array_bytes(arrays.values())

    def mark_lost(self, session_id: str, why: str) -> None:
        """Record that `session_id` could not be written, and why."""
        self._write_json(self._file(session_id, ".lost"),
                         {"instance": self.instance, "why": why, "when": time.time()})
        self._file(session_id, ".moving").unlink(missing_ok=True)

    # -- a restoring server ------------------------------------------------------------------
    def status(self, session_id: str) -> Stored | None:
        """What the state dir holds for `session_id`; None: nothing."""
        if not SESSION_ID.match(session_id):
            return None
        path = self._file(session_id, ".safetensors")
        try:
            with safe_open(str(path), "np") as f:
                meta = json.loads(f.metadata()[_META_KEY])
            return Stored("moved", meta["epoch"], f"written by instance {meta['instance']}",
                          meta["owner"])
        except (FileNotFoundError, OSError):
            pass
        lost = self._read_json(self._file(session_id, ".lost"))
        if lost is not None:
            return Stored("lost", 0, f"server instance {lost.get('instance')} drained without "
                          f"writing it: {lost.get('why')}")
        moving = self._read_json(self._file(session_id, ".moving"))
        if moving is not None:
            if time.time() > moving.get("deadline", 0) + STALE_AFTER:
                return Stored("lost", 0, f"server instance {moving.get('instance')} was "
                              "moving it but stopped before writing it")
            return Stored("moving", 0, f"server instance {moving.get('instance')} is "
                          "writing it")
        return None

    def sweep(self, older_than: float) -> list[str]:
        """Remove what has waited unclaimed longer than `older_than` seconds (a moved session
        nobody restored within its TTL, an old lost marker, a stale moving one); the names."""
        now, removed = time.time(), []
        for path in self.path.iterdir():
            if path.suffix not in (".safetensors", ".lost", ".moving") or path.name[0] == ".":
                continue
            try:
                if now - path.stat().st_mtime > older_than + STALE_AFTER:
                    path.unlink()
                    removed.append(path.name)
            except FileNotFoundError:  # another server swept or claimed it
                pass
        return removed

    @staticmethod
    def _read_json(path: pathlib.Path) -> dict | None:
        try:
            return json.loads(path.read_text())
        except (FileNotFoundError, ValueError, OSError):
            return None

    @contextlib.contextmanager
    def claim(self, session_id: str) -> Iterator[tuple[dict, dict] | None]:
        """Take the session's state out of the dir for the block: (arrays, description), or
        None when another server took it first. It goes back if the block fails."""
        path = self._file(session_id, ".safetensors")
        claimed = path.with_name(f".{session_id}.{self.instance}.restoring")
        try:
            os.replace(path, claimed)
        except FileNotFoundError:
            yield None
            return
        try:
            with safe_open(str(claimed), "np") as f:
                meta = json.loads(f.metadata()[_META_KEY])
            yield load_file(str(claimed)), meta
        except BaseException:
            os.replace(claimed, path)
            raise
        claimed.unlink(missing_ok=True)
