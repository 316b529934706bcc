"""The shared state dir (`--state-dir`): sessions a draining server wrote, for another server to
restore under the same id. Files, per session id:

  <id>.moving        JSON: a draining server (instance, deadline) will write this session
  <id>.safetensors   the session (`seam.pack`), its description and epoch in the metadata
  <id>.lost          JSON: the draining server could not write it (why, instance), or its
                     state file was found damaged
  <id>.damaged       a state file that failed its checks, moved aside for a person to see

Each state file carries a CRC-32 per entry (over its dtype, shape and bytes) and one of its
description, as gs.save's files do. A file that fails them (a flipped bit, an edited dtype,
truncation, a malformed header) is never restored: it is moved aside, the session is
recorded as lost with the reason, and calls naming it hear that (NOT_FOUND, reason "lost").

Every file appears by an atomic rename, so a reader never sees half of one; a restoring
server claims the state by renaming it first, so two servers never restore the same session.
Only ids of the server's own alphabet reach a path (see SESSION_ID).
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import secrets
import time
import zlib
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np
from gradserve.engine import seam
from gradserve.v1.codec import SESSION_ID
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

from ._errors import SessionNotFoundError
from ._sessions import Session

_META_KEY = "gradserve"
_META_CRC = "gradserve_crc32"  # of the description's JSON text
STALE_AFTER = 10.0  # seconds past a .moving marker's deadline before its writer counts as gone


class Stored(NamedTuple):
    """What the state dir says about a session id."""

    state: str  # "moved" (restorable), "moving" (not written yet), "lost"
    epoch: int = 0
    details: str = ""
    owner: str = ""


class Damaged(Exception):
    """A state file that failed its checks; the message says how."""


def _entry_crc(array: np.ndarray) -> int:
    head = f"{array.dtype.str}{list(array.shape)}".encode()
    return zlib.crc32(np.ascontiguousarray(array).reshape(-1).view(np.uint8),
                      zlib.crc32(head))


def _checked_meta(metadata: dict | None) -> dict:
    """The description in a state file's metadata, its own CRC checked."""
    if not metadata or _META_KEY not in metadata or _META_CRC not in metadata:
        raise Damaged("its gradserve metadata or their checksum are missing")
    text = metadata[_META_KEY]
    if str(zlib.crc32(text.encode())) != metadata[_META_CRC]:
        raise Damaged("its description does not match its checksum")
    try:
        meta = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise Damaged(f"its description is not JSON ({e})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("crc32"), dict):
        raise Damaged("its description holds no entry checksums")
    return meta


def check_arrays(arrays: dict, meta: dict) -> None:
    """Raise Damaged unless `arrays` are exactly the entries `meta`'s checksums name."""
    crc = meta["crc32"]
    if set(crc) != set(arrays):
        raise Damaged("its entries do not match its checksums")
    for key, array in arrays.items():
        if _entry_crc(array) != crc[key]:
            raise Damaged(f"entry {key!r} does not match its checksum (dtype, shape or "
                          "bytes changed)")


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
                    written=time.time(), crc32={k: _entry_crc(a) for k, a in arrays.items()})
        text = json.dumps(meta)
        self._write(self._file(session.id, ".safetensors"),
                    lambda tmp: save_file(arrays, str(tmp), metadata={
                        _META_KEY: text, _META_CRC: str(zlib.crc32(text.encode()))}))
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
        if not SESSION_ID.fullmatch(session_id):
            return None
        path = self._file(session_id, ".safetensors")
        try:
            meta = self._read_meta(path)
            return Stored("moved", meta["epoch"], f"written by instance {meta['instance']}",
                          meta["owner"])
        except FileNotFoundError:
            pass
        except Damaged as e:
            return Stored("lost", 0, self.set_aside(session_id, path, e))
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
            if path.suffix not in (".safetensors", ".lost", ".moving", ".damaged") or \
                    path.name[0] == ".":
                continue
            try:
                if now - path.stat().st_mtime > older_than + STALE_AFTER:
                    path.unlink()
                    removed.append(path.name)
            except FileNotFoundError:  # another server swept or claimed it
                pass
        return removed

    @staticmethod
    def _read_meta(path: pathlib.Path) -> dict:
        """The checked description of a state file; Damaged when it fails a check."""
        try:
            with safe_open(str(path), "np") as f:
                meta = _checked_meta(f.metadata())
        except FileNotFoundError:
            raise
        except Damaged:
            raise
        except Exception as e:  # the safetensors reader's errors: truncated, bad header
            raise Damaged(f"it is not a readable safetensors file ({e})") from None
        for key, kind in (("epoch", int), ("instance", str), ("owner", str),
                          ("device", str), ("applied_seq", int)):
            if not isinstance(meta.get(key), kind):
                raise Damaged(f"its description has no valid {key!r}")
        return meta

    def set_aside(self, session_id: str, path: pathlib.Path, why: Exception) -> str:
        """Move a damaged state file out of the way, record the session as lost; the why."""
        text = (f"its state file failed its checks ({why}); it was moved aside to "
                f"{self._file(session_id, '.damaged')} and not restored")
        with contextlib.suppress(FileNotFoundError):
            os.replace(path, self._file(session_id, ".damaged"))
        self.mark_lost(session_id, text)
        return f"server instance {self.instance} found that {text}"

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
            try:
                meta = self._read_meta(claimed)
                arrays = load_file(str(claimed))
                check_arrays(arrays, meta)
            except Damaged:
                raise
            except Exception as e:  # noqa: BLE001 (whatever the reader raised: not restorable)
                raise Damaged(f"it is not a readable safetensors file ({e})") from None
            yield arrays, meta
        except Damaged as e:  # never back into the dir: it would fail every later call
            why = self.set_aside(session_id, claimed, e)
            raise SessionNotFoundError(f"session {session_id} not found: it was lost: {why}",
                                       "lost") from None
        except BaseException:
            os.replace(claimed, path)
            raise
        claimed.unlink(missing_ok=True)
