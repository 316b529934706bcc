"""The server's half of hooks and custom Functions whose Python lives in the client.

The engine's stand-ins (`engine.core.callbacks`: a `ClientHook`, nodes of `ClientFunction`)
call the caller the server passes in: while the executor runs a request (`serving`) that is
`call_client` for the session being served. While the servicer runs a request that may call
back it gives the session a `Channel` to the Pipeline stream: a call sends a `callback`
message, then asks the stream for the client's next requests and runs them in place (the
session's lock is already held, and this is its item on a compute slot), until the one whose
`then` is the `callback_result` for its key; the results go back to the engine's backward.
Waiting for the client holds no compute slot and ends after --callback-timeout.

Nothing here imports grpc: the messages are plain protobuf.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import time
from collections.abc import Callable, Iterator

from gradserve.engine import AutogradError, InvalidArgumentError, is_grad_enabled
from gradserve.engine.seam import client_calls
from gradserve.v1 import gradserve_pb2 as pb

from ._convert import tensor_info
from ._requests import tensor_meta

_ids = itertools.count(1)


class CallbackError(AutogradError):
    """The client's hook or Function backward raised, or its ops failed."""


@contextlib.contextmanager
def serving(session) -> Iterator[None]:
    """Run `session`'s request in the block: callbacks reach its client (`call_client`)."""
    with client_calls(functools.partial(call_client, session)):
        yield


class Channel:
    """One Pipeline stream while a request that may call back runs (see the module doc).

    `ask(seconds)` waits up to `seconds` for the client's next request on the stream: the
    request, None when the stream ended, or TimeoutError; `send(response)` queues a reply on
    it. `nested(session, request) -> (response, results)` runs a request in place: its ops,
    its release, its action; `results` are the tensors a callback_result names. While it
    waits for the client it gives its compute slot back (`client_wait`), and it waits at most
    `timeout` seconds (--callback-timeout) for each callback's answer."""

    def __init__(self, ask: Callable, send: Callable, seq: int, nested: Callable,
                 timeout: float | None = None,
                 client_wait: Callable = contextlib.nullcontext) -> None:
        self.ask, self.send, self.seq, self.nested = ask, send, seq, nested
        self.timeout = timeout if timeout and timeout > 0 else None
        self.client_wait = client_wait

    def call(self, session, key: str, kind: str, tensors: list, create_graph: bool) -> list:
        infos = []
        for t in tensors:
            if t is None:
                infos.append(pb.TensorInfo())
                continue
            tid = f"~g{next(_ids)}"  # the server's ids: the client's never start with "~"
            session.tensors[tid] = t
            infos.append(tensor_info(tensor_meta(tid, t)))
        self.send(pb.PipelineResponse(seq=self.seq, callback=pb.Callback(
            key=key, kind=kind, grads=infos, create_graph=create_graph)))
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                with self.client_wait():
                    req = self.ask(left)
            except TimeoutError:
                raise CallbackError(
                    f"the client did not answer the server's call of its {kind} {key} within "
                    f"{self.timeout:g} s (--callback-timeout); this backward failed, the "
                    "session is usable") from None
            if req is None:
                raise CallbackError(f"the client closed its stream while the server waited for "
                                    f"its {kind} {key}")
            answer = req.callback_result if req.WhichOneof("then") == "callback_result" else None
            response, results = self.nested(session, req)
            self.send(response)
            if answer is None:
                continue
            if answer.key != key:
                raise CallbackError(f"the client answered callback {answer.key!r} while the "
                                    f"server waited for {key!r}")
            if response.HasField("error"):
                raise CallbackError(f"the ops of the client's {kind} failed: "
                                    f"{response.error.message}")
            if answer.error:
                raise CallbackError(f"the client's {kind} raised {answer.error}")
            return results


def _info(meta):
    return tensor_info(meta)


def call_client(session, key: str, kind: str, tensors: list) -> list:
    """The engine's caller on a server (see `serving`): ask the session's client."""
    channel = getattr(session, "channel", None)
    if channel is None:
        raise CallbackError(
            f"this backward reached a {kind} that runs in the session's client ({key}); only a "
            "backward that client waits for can run it (the SDK does, for graphs with hooks "
            "or custom Functions)")
    return channel.call(session, key, kind, tensors, is_grad_enabled())


def answer_results(session, answer: pb.CallbackResult) -> list:
    """The tensors a callback_result names (None for "")."""
    out = []
    for rid in answer.results:
        if not rid:
            out.append(None)
        elif rid in session.tensors:
            out.append(session.tensors[rid])
        else:
            raise InvalidArgumentError(f"callback result {rid!r} is not a tensor of this session")
    return out

