"""Fixtures for server tests: real servers (in-process and subprocess) and wire helpers.

Helpers are handed to tests through the `wire` fixture (with --import-mode=importlib a test
module cannot import a sibling helper module).
"""

from __future__ import annotations

import os
import pathlib
import queue
import re
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import grpc
import numpy as np
import pytest
from google.protobuf import json_format
from gradserve.server import create_server
from gradserve.v1 import gradserve_pb2 as pb
from gradserve.v1 import gradserve_pb2_grpc as pb_grpc

ROOT = pathlib.Path(__file__).resolve().parents[2]
MiB = 1 << 20
CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 64 * MiB),
                   ("grpc.max_send_message_length", 64 * MiB)]


# -- wire helpers ---------------------------------------------------------------------------
def op(name, inputs=(), outputs=(), **fields) -> pb.OpCall:
    """An OpCall; string inputs are tensor ids, numbers and bools are scalars."""
    call = pb.OpCall(op=name, outputs=list(outputs))
    for x in inputs:
        if isinstance(x, str):
            call.inputs.add(tensor=x)
        elif isinstance(x, bool):
            call.inputs.add(bool=x)
        elif isinstance(x, int):
            call.inputs.add(int=x)
        else:
            call.inputs.add(float=x)
    for key, value in fields.items():
        if key == "attrs":
            call.attrs.update(value)
        elif key == "data":
            call.data.CopyFrom(value if isinstance(value, pb.TensorData)
                               else json_format.ParseDict(value, pb.TensorData()))
        else:
            setattr(call, key, value)
    return call


def tensor_op(tid, values, shape=(), dtype="float32", requires_grad=False) -> pb.OpCall:
    return op("tensor", outputs=[tid], attrs={"requires_grad": requires_grad},
              data=pb.TensorData(shape=list(shape), dtype=dtype, values=list(values)))


def seed_ops(prefix: str = "") -> list[pb.OpCall]:
    """The seed example: loss = (input * w1 + w2).mean() with w1, w2 requiring grad."""
    p = prefix
    return [
        tensor_op(p + "input", [1, 2, 3, 4], shape=(2, 2)),
        tensor_op(p + "w1", [2.0], requires_grad=True),
        tensor_op(p + "w2", [3.0], requires_grad=True),
        op("mul", [p + "input", p + "w1"], [p + "l1"], site="seed.py:5"),
        op("add", [p + "l1", p + "w2"], [p + "l2"], site="seed.py:6"),
        op("mean", [p + "l2"], [p + "loss"], site="seed.py:7"),
    ]


def fetch(stub, sid, ids, grad=False, raw=False, metadata=None) -> dict:
    """Fetch and reassemble tensors: id -> numpy array (or None when the tensor is None)."""
    encoding = pb.ENCODING_RAW if raw else pb.ENCODING_VALUES
    out, parts, meta = {}, {}, {}
    for msg in stub.Fetch(pb.FetchRequest(session_id=sid, ids=list(ids), grad=grad,
                                          encoding=encoding), metadata=metadata):
        if msg.none:
            out[msg.id] = None
            continue
        if msg.offset == 0:
            meta[msg.id] = (tuple(msg.tensor.shape), msg.tensor.dtype)
            parts[msg.id] = []
        parts[msg.id].append(msg.tensor.raw if raw else list(msg.tensor.values))
        if msg.last:
            shape, dtype = meta[msg.id]
            np_dtype = np.dtype(dtype).newbyteorder("<") if dtype != "bool" else np.bool_
            if raw:
                arr = np.frombuffer(b"".join(parts[msg.id]), dtype=np_dtype)
            else:
                arr = np.array([v for p in parts[msg.id] for v in p], dtype=np.float64)
            out[msg.id] = arr.reshape(shape)
    return out


def run_seed(stub, sid=None, prefix="", metadata=None) -> dict:
    """Run the seed example (in a new session unless `sid`) and check every number."""
    own = sid is None
    if own:
        sid = stub.CreateSession(pb.CreateSessionRequest(device="cpu"),
                                 metadata=metadata).session_id
    p = prefix
    resp = stub.RunOps(pb.RunOpsRequest(session_id=sid, ops=seed_ops(p)), metadata=metadata)
    infos = {t.id: t for t in resp.outputs}
    assert infos[p + "loss"].grad_fn == "MeanBackward0"
    assert infos[p + "l1"].grad_fn == "MulBackward0"
    assert list(infos[p + "input"].shape) == [2, 2]
    back = stub.Backward(pb.BackwardRequest(session_id=sid, tensors=[p + "loss"]),
                         metadata=metadata)
    assert {p + "w1", p + "w2"} <= set(back.grads_defined)
    values = fetch(stub, sid, [p + "loss", p + "l1"], metadata=metadata)
    grads = fetch(stub, sid, [p + "w1", p + "w2", p + "input"], grad=True, metadata=metadata)
    assert values[p + "loss"] == 8.0
    assert values[p + "l1"].tolist() == [[2, 4], [6, 8]]
    assert grads[p + "w1"] == 2.5 and grads[p + "w2"] == 1.0
    assert grads[p + "input"] is None
    if own:
        stub.CloseSession(pb.SessionRef(session_id=sid), metadata=metadata)
    return {"values": values, "grads": grads, "session_id": sid}


def error_detail(err: grpc.RpcError) -> pb.Error:
    """The gradserve.v1.Error a failed call carries in its trailing metadata."""
    for key, value in err.trailing_metadata() or ():
        if key == "gradserve-error-bin":
            return pb.Error.FromString(value)
    raise AssertionError(f"no error detail on {err.code()}: {err.details()}")


def expect_error(fn, code: grpc.StatusCode, *fragments: str) -> grpc.RpcError:
    """Call fn(); it must fail with `code`, a message containing each fragment, a detail."""
    with pytest.raises(grpc.RpcError) as info:
        fn()
    err = info.value
    assert err.code() == code, f"{err.code()}: {err.details()}"
    for fragment in fragments:
        assert fragment in err.details(), err.details()
    detail = error_detail(err)
    assert detail.code == code.value[0]
    if detail.op:  # the status text names the op for people; the detail carries it in fields
        assert err.details() == f"op {detail.op_index} ({detail.op}" + (
            f" at {detail.site}" if detail.site else "") + f"): {detail.message}"
    else:
        assert detail.message == err.details()
    return err


def pipe(stub):
    """A Pipeline stream fed one request at a time: (send, replies)."""
    requests: queue.Queue = queue.Queue()

    def feed():
        while (request := requests.get()) is not None:
            yield request

    return requests.put, stub.Pipeline(feed())


def connect(address: str, credentials=None):
    channel = (grpc.secure_channel(address, credentials, options=CHANNEL_OPTIONS)
               if credentials is not None
               else grpc.insecure_channel(address, options=CHANNEL_OPTIONS))
    return channel, pb_grpc.GradserveServiceStub(channel)


@pytest.fixture(scope="session")
def wire():
    """The helpers above, for test modules."""
    return SimpleNamespace(op=op, tensor_op=tensor_op, seed_ops=seed_ops, fetch=fetch,
                           run_seed=run_seed, error_detail=error_detail,
                           expect_error=expect_error, connect=connect, pipe=pipe, pb=pb,
                           MiB=MiB)


# -- servers --------------------------------------------------------------------------------
@pytest.fixture
def make_server():
    """Start in-process servers: make_server(**create_server_kwargs) -> (server, address)."""
    started = []

    def make(**kwargs):
        server, port = create_server("127.0.0.1:0", **kwargs)
        server.start()
        started.append(server)
        return server, f"127.0.0.1:{port}"

    yield make
    for server in started:
        server.stop(0).wait()


@pytest.fixture(scope="module")
def address():
    """One in-process server per test module, with a small byte limit for the fuzzers."""
    server, port = create_server("127.0.0.1:0", max_session_bytes=96 * MiB)
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(0).wait()


@pytest.fixture(scope="module")
def stub(address):
    channel, stub = connect(address)
    yield stub
    channel.close()


class ServerProcess:
    """A `python -m gradserve.server` (or `gradserve serve`) subprocess on a free port."""

    ADDRESS = re.compile(r"^gradserve listening on (\S+) \(devices: ([^)]*)\)$")

    def __init__(self, argv: list[str], env: dict | None = None, timeout: float = 30) -> None:
        full_env = {**os.environ, **(env or {})}
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=full_env, cwd=ROOT)
        self.stderr_lines: list[str] = []
        self._stderr_reader = threading.Thread(target=self._drain_stderr, daemon=True)
        self._stderr_reader.start()
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: lines.put(self.proc.stdout.readline()),
                         daemon=True).start()
        try:
            first = lines.get(timeout=timeout)
        except queue.Empty:
            self.kill()
            raise AssertionError("the server printed no address line") from None
        m = self.ADDRESS.match(first.rstrip("\n"))
        if m is None:
            self.proc.wait(timeout=5)
            raise AssertionError(f"unexpected first line {first!r}; stderr: "
                                 f"{''.join(self.stderr_lines)}")
        self.address, self.devices = m.group(1), m.group(2)

    def _drain_stderr(self) -> None:
        for line in self.proc.stderr:
            self.stderr_lines.append(line)

    def wait(self, timeout: float) -> int:
        """The exit code, once the process ended and its stderr is fully read."""
        code = self.proc.wait(timeout=timeout)
        self._stderr_reader.join(timeout=5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.wait(timeout=10)
        self.proc.stdout.close()
        self.proc.stderr.close()


@pytest.fixture
def server_process():
    """Start subprocess servers: server_process(*extra_args, env=..., argv=...)."""
    started: list[ServerProcess] = []

    def start(*args: str, env: dict | None = None, argv: list[str] | None = None):
        argv = argv or [sys.executable, "-m", "gradserve.server"]
        proc = ServerProcess([*argv, *args], env=env)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()


def wait_until(predicate, timeout: float = 5.0, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
