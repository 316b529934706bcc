"""Seeded property-based fuzzing of every request message against a real server process.

For every method of the service (taken from its descriptor) hypothesis builds requests from
op names, ids, shapes, dtypes, attrs, tensor bytes, Upload chunk orders and truncations,
huge declared sizes, Pipeline streams with the SDK's compact `op_batch` JSON, and plain
garbage bytes. Every answer must be OK or one of the codes bad input earns (INVALID_ARGUMENT,
NOT_FOUND, FAILED_PRECONDITION, RESOURCE_EXHAUSTED, PERMISSION_DENIED), made by the server
(it carries the Error trailer), never INTERNAL or UNKNOWN or a hang; the server process stays
up, never grows past its byte limit before refusing, and an SDK session training beside the
fuzzer computes every step exactly as the in-process engine does.

CI runs a few thousand cases (about half a minute on 2 CPUs), the same ones every run
(hypothesis's derandomized stream); GRADSERVE_FUZZ_SCALE=20 runs twenty times as many, and
GRADSERVE_FUZZ_SEED=n draws another set.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading

import grpc
import numpy as np
import pytest
from gradserve.engine import OPS
from gradserve.v1 import gradserve_pb2 as pb
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

LIMIT = 32 << 20  # --max-session-bytes: every allocation must be refused past it
SERVICE = pb.DESCRIPTOR.services_by_name["GradserveService"]


def proc_status(pid: int) -> dict[str, int]:
    """/proc/PID/status sizes in bytes: VmRSS, VmHWM (peak RSS), VmPeak (peak virtual)."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "VmPeak"):
                out[key] = int(value.split()[0]) * 1024
    return out


class Target:
    """The server process and calls to it with raw request bytes."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gradserve.server", "--port", "0", "--max-session-bytes",
             str(LIMIT), "--max-sessions", "256", "--log-level", "error"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: lines.put(self.proc.stdout.readline()),
                         daemon=True).start()
        line = lines.get(timeout=60)
        assert line.startswith("gradserve listening on "), line
        self.address = line.split()[3]
        self.channel = grpc.insecure_channel(self.address, options=[
            ("grpc.max_send_message_length", 64 << 20),
            ("grpc.max_receive_message_length", 64 << 20)])
        self.calls = {}
        for m in SERVICE.methods:
            path = f"/{SERVICE.full_name}/{m.name}"
            make = {(False, False): self.channel.unary_unary,
                    (False, True): self.channel.unary_stream,
                    (True, False): self.channel.stream_unary,
                    (True, True): self.channel.stream_stream}[
                m.client_streaming, m.server_streaming]
            self.calls[m.name] = (make(path), m)

    def call(self, method: str, request, metadata=(), timeout: float = 20.0):
        """Send `request` (bytes, or a list of bytes for streams) -> (code, responses, error
        detail present). Every response is read."""
        stub, m = self.calls[method]
        try:
            if m.client_streaming:
                request = iter(request)
            if m.server_streaming:
                out = stub(request, metadata=metadata, timeout=timeout)
                return grpc.StatusCode.OK, list(out), True
            return grpc.StatusCode.OK, [stub(request, metadata=metadata, timeout=timeout)], True
        except grpc.RpcError as e:
            trailer = any(k == "gradserve-error-bin" for k, _ in e.trailing_metadata() or ())
            return e.code(), [], trailer

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        self.channel.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)
        self.proc.stdout.close()


class Healthy(threading.Thread):
    """An SDK session training beside the fuzzer; every step's gradient must equal the
    in-process engine's, bit for bit. `failures` lists what went wrong."""

    def __init__(self, address: str) -> None:
        super().__init__(daemon=True, name="healthy-session")
        self.address = address
        self.stop = threading.Event()
        self.steps = 0
        self.failures: list[str] = []

    def run(self) -> None:
        import gradserve as gs
        from gradserve import engine

        rng = np.random.default_rng(0)
        x_np = rng.standard_normal((8, 4)).astype(np.float32)
        w_np = rng.standard_normal((4, 3)).astype(np.float32)

        def step(module, make):
            x, w = make(x_np), make(w_np, requires_grad=True)
            loss = ((x @ w).relu() * 0.5 + w.sum()).mean()
            loss.backward()
            return loss.item(), w.grad.numpy().copy()

        want = step(engine, lambda a, **kw: engine.tensor(a, **kw))
        try:
            with gs.connect(self.address) as client, client.session() as s:
                while not self.stop.is_set():
                    got = step(s, lambda a, **kw: s.tensor(a, **kw))
                    if got[0] != want[0] or not np.array_equal(got[1], want[1]):
                        self.failures.append(f"step {self.steps}: {got} != {want}")
                    self.steps += 1
        except Exception as e:  # the session must live through the fuzzing
            self.failures.append(f"{type(e).__name__}: {e}")


@pytest.fixture(scope="module")
def target():
    t = Target()
    healthy = Healthy(t.address)
    healthy.start()
    t.healthy = healthy
    t.started = proc_status(t.proc.pid)
    yield t
    healthy.stop.set()
    healthy.join(timeout=30)
    t.close()


SEED = os.environ.get("GRADSERVE_FUZZ_SEED")  # unset: hypothesis's fixed, derandomized stream


def fuzz(default: int):
    """A property's settings: `default` examples (CI) times GRADSERVE_FUZZ_SCALE (e.g. 20
    locally), from a fixed stream of cases, or GRADSERVE_FUZZ_SEED's."""

    def decorate(test):
        test = settings(FUZZ, max_examples=max(1, int(
            default * float(os.environ.get("GRADSERVE_FUZZ_SCALE", "1")))))(test)
        return test if SEED is None else seed(int(SEED))(test)

    return decorate


pytestmark = pytest.mark.slow

ALLOWED = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
           grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.RESOURCE_EXHAUSTED,
           grpc.StatusCode.PERMISSION_DENIED}
ALLOWED_VALUES = {c.value[0] for c in ALLOWED}
SEEDED = ["f", "g", "i", "b", "loss", "v"]  # ids the fuzz session holds before each case

FUZZ = settings(derandomize=SEED is None, database=None, deadline=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture,
                                       HealthCheck.large_base_example])

# -- strategies -------------------------------------------------------------------------------
# Pools drawn with one choice each keep a case cheap (hypothesis spends ~0.1 ms a draw), so
# thousands run in CI; the free-form strategies stay in the mix, less often.
def weighted(*choices):
    """One of (weight, strategy) pairs, drawn in proportion to the weights (st.one_of draws
    its branches evenly)."""
    table = [s for weight, s in choices for _ in range(weight)]
    return st.integers(0, len(table) - 1).flatmap(lambda i: table[i])


NAME_POOL = sorted(OPS) + ["", "mull", "sofmax", "tensor ", "__init__", "x" * 200, "\x00"]
names = weighted((4, st.sampled_from(NAME_POOL)), (1, st.text(max_size=12)))
ID_POOL = SEEDED + ["", "new", "out", "\x00", "é" * 3, "x" * 300]
# mostly ids the session holds, so that ops get past the lookup into the engine
ids = weighted((6, st.sampled_from(SEEDED)), (2, st.sampled_from(ID_POOL)),
               (1, st.text(max_size=10)))
dims = st.one_of(st.integers(-3, 6), st.sampled_from([0, 1 << 20, 1 << 31, 1 << 40, 1 << 62,
                                                      -(1 << 62)]))
shapes = st.lists(dims, max_size=5)
dtypes = st.one_of(st.sampled_from(["", "float32", "float64", "int64", "bool", "float16",
                                    "int32", "uint8"]), st.text(max_size=8))
numbers = st.one_of(st.integers(-(1 << 70), 1 << 70), st.floats(allow_nan=True,
                                                                 allow_infinity=True))
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=6)),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=3),
    max_leaves=4)
ATTR_POOL = [
    {}, {"dim": 0}, {"dim": -1, "keepdim": True}, {"dim": 7}, {"dim": [0, 1]}, {"dim": "x"},
    {"shape": [2, 3]}, {"shape": [-1]}, {"shape": [3, -1]}, {"shape": [1 << 31, 1 << 31]},
    {"shape": [1 << 62]}, {"shape": [-5]}, {"shape": []}, {"shape": 3},
    {"shape": [4], "dtype": "float32"}, {"shape": [1 << 20, 1 << 20], "dtype": "float64"},
    {"shape": [2], "value": 1.5}, {"shape": [2], "value": "a"}, {"dtype": "int64"},
    {"dtype": "complex64"}, {"dtype": None, "device": "cuda:3"}, {"device": "cpu"},
    {"key": [["int", 0]]}, {"key": [["slice", 0, 2, 1]]}, {"key": [["none"], ["ellipsis"]]},
    {"key": [["int", 99]]}, {"key": [["slice", 0, 2, 0]]}, {"key": [["tensor", 0]]},
    {"key": "garbage"}, {"dims": [1, 0]}, {"dims": [0, 0]}, {"dim0": 0, "dim1": 1},
    {"start": 0, "end": 1e9}, {"start": 0, "end": 10, "step": 0}, {"n": 1 << 20},
    {"n": -1}, {"requires_grad": True}, {"requires_grad": "yes"}, {"seed": 1 << 70},
    {"seed": 3}, {"p": 0.5}, {"p": 2}, {"min": 0.0, "max": 1.0}, {"reduction": "sum"},
    {"reduction": "bogus"}, {"ignore_index": -100}, {"__floats__": ["value"], "value": 2},
    {"__floats__": 3}, {"steps": [["getitem", {"key": [["int", 0]]}, 0]]}, {"zero": True},
    {"start_dim": 0, "end_dim": 5}, {"correction": 0}, {"bogus": 1},
]
ATTR_NAMES = sorted({k for d in ATTR_POOL for k in d})
attr_dicts = weighted((3, st.sampled_from(ATTR_POOL)), (1, st.dictionaries(
    st.one_of(st.sampled_from(ATTR_NAMES), st.text(max_size=6)), json_values, max_size=3)))


@st.composite
def tensor_data(draw) -> pb.TensorData:
    shape = draw(st.lists(st.one_of(st.integers(0, 4), dims), max_size=3))
    data = pb.TensorData(shape=[max(min(d, (1 << 63) - 1), -(1 << 63)) for d in shape],
                         dtype=draw(dtypes))
    kind = draw(st.sampled_from(["values", "raw", "both", "none"]))
    if kind in ("values", "both"):
        data.values.extend(draw(st.lists(st.floats(allow_nan=True), max_size=12)))
    if kind in ("raw", "both"):
        data.raw = draw(st.binary(max_size=64))
    return data


operands = st.one_of(st.tuples(st.just("tensor"), ids),
                     st.tuples(st.just("float"), st.floats(allow_nan=True)),
                     st.tuples(st.just("int"), st.integers(-(1 << 63), (1 << 63) - 1)),
                     st.tuples(st.just("bool"), st.booleans()), st.just((None, None)))


@st.composite
def op_calls(draw) -> pb.OpCall:
    flags = draw(st.integers(0, 7))
    call = pb.OpCall(op=draw(names), outputs=draw(st.lists(ids, max_size=2)),
                     no_grad=bool(flags & 1), inplace=bool(flags & 2),
                     site="fuzz.py:1" if flags & 4 else "")
    for kind, value in draw(st.lists(operands, max_size=3)):
        if kind is None:
            call.inputs.add()
        else:
            call.inputs.add(**{kind: value})
    attrs = draw(attr_dicts)
    if attrs:
        try:
            call.attrs.update(attrs)
        except (ValueError, TypeError):  # a value a Struct cannot hold: send none
            pass
    if draw(st.integers(0, 3)) == 0:
        call.data.CopyFrom(draw(tensor_data()))
    return call


INPUT_POOL = SEEDED + ["", "ghost", 0, 1, -1, 2.5, float("nan"), float("inf"), True, False,
                      1 << 63, -(1 << 64), {"d": 0}, {"d": 1}, {"d": -1}, {"d": "0"}, None,
                      [1, 2], {}]


def _batch_input():
    return weighted((4, st.sampled_from(INPUT_POOL)), (1, json_values))


batch_entries = st.one_of(
    st.tuples(names, st.lists(_batch_input(), max_size=3), st.lists(ids, max_size=2),
              st.one_of(st.none(), attr_dicts), st.integers(-1, 4)).map(list),
    json_values)


@st.composite
def op_batches(draw) -> bytes:
    raw = json.dumps(draw(st.lists(batch_entries, max_size=3))).encode()
    how = draw(st.sampled_from(["whole"] * 5 + ["cut", "garbage", "not a list"]))
    if how == "cut":
        return raw[:draw(st.integers(0, len(raw)))]
    if how == "garbage":
        return draw(st.binary(max_size=40))
    if how == "not a list":
        return json.dumps(draw(json_values)).encode()
    return raw


def session_ids(fuzz_sid: str):
    return weighted((12, st.just(fuzz_sid)), (1, ids))


@st.composite
def pipeline_requests(draw, sid: str) -> pb.PipelineRequest:
    req = pb.PipelineRequest(session_id=draw(session_ids(sid)),
                             seq=draw(st.integers(0, (1 << 64) - 1)),
                             release=draw(st.lists(ids, max_size=2)))
    if draw(st.integers(0, 3)) == 0:  # the SDK sends op_batch; OpCalls are for people
        req.ops.extend(draw(st.lists(op_calls(), max_size=2)))
    else:
        req.op_batch = draw(op_batches())
        if draw(st.integers(0, 2)) == 0:
            req.op_data.append(draw(tensor_data()))
    then = draw(st.sampled_from(["none", "none", "none", "backward", "grad", "fetch", "list"]))
    if then == "backward":
        req.backward.CopyFrom(draw(backward_requests(sid)))
    elif then == "grad":
        req.grad.CopyFrom(draw(grad_requests(sid)))
    elif then == "fetch":
        req.fetch.CopyFrom(draw(fetch_requests(sid)))
    elif then == "list":
        req.list.ids.extend(draw(st.lists(ids, max_size=3)))
    return req


@st.composite
def backward_requests(draw, sid: str) -> pb.BackwardRequest:
    req = pb.BackwardRequest(session_id=draw(session_ids(sid)),
                             tensors=draw(st.lists(ids, max_size=2)),
                             grad_tensors=draw(st.lists(ids, max_size=2)),
                             create_graph=draw(st.booleans()),
                             inputs=draw(st.lists(ids, max_size=2)))
    if draw(st.booleans()):
        req.retain_graph = draw(st.booleans())
    return req


@st.composite
def grad_requests(draw, sid: str) -> pb.GradRequest:
    req = pb.GradRequest(session_id=draw(session_ids(sid)),
                         outputs=draw(st.lists(ids, max_size=2)),
                         inputs=draw(st.lists(ids, max_size=2)),
                         grad_outputs=draw(st.lists(ids, max_size=2)),
                         results=draw(st.lists(ids, max_size=2)),
                         create_graph=draw(st.booleans()), allow_unused=draw(st.booleans()))
    if draw(st.booleans()):
        req.retain_graph = draw(st.booleans())
    return req


@st.composite
def fetch_requests(draw, sid: str) -> pb.FetchRequest:
    return pb.FetchRequest(session_id=draw(session_ids(sid)), ids=draw(st.lists(ids, max_size=3)),
                           grad=draw(st.booleans()), encoding=draw(st.integers(-1, 4)))


@st.composite
def upload_streams(draw, sid: str) -> list[bytes]:
    """An Upload's messages: a header (or not, or late, or twice), chunks, and how many bytes
    they add up to against what the header declares (truncated, too many, huge)."""
    shape = draw(st.one_of(st.lists(st.integers(0, 64), max_size=3),
                           st.lists(dims, min_size=1, max_size=3)))
    head = pb.UploadRequest(session_id=draw(session_ids(sid)), id=draw(ids),
                            requires_grad=draw(st.booleans()),
                            tensor=pb.TensorData(shape=[max(min(d, (1 << 63) - 1), -(1 << 63))
                                                        for d in shape], dtype=draw(dtypes)))
    if draw(st.booleans()):
        head.tensor.raw = draw(st.binary(max_size=32))
    if draw(st.integers(0, 5)) == 0:
        head.tensor.values.extend(draw(st.lists(st.floats(), max_size=4)))
    chunks = [pb.UploadRequest(chunk=draw(st.binary(max_size=256))).SerializeToString()
              for _ in range(draw(st.integers(0, 4)))]
    order = draw(st.sampled_from(["header first", "header first", "header late", "no header",
                                  "two headers", "garbage"]))
    header = head.SerializeToString()
    if order == "header late":
        return chunks[:1] + [header] + chunks[1:]
    if order == "no header":
        return chunks
    if order == "two headers":
        return [header, *chunks, header]
    if order == "garbage":
        return [header, draw(st.binary(min_size=1, max_size=20)), *chunks]
    return [header, *chunks]


# -- checks -----------------------------------------------------------------------------------
def _seed(target) -> str:
    """The fuzz session, holding SEEDED ids of several kinds (made again each case)."""
    if getattr(target, "fuzz_sid", None) is None:
        code, [info], _ = target.call("CreateSession", b"")
        target.fuzz_sid = pb.SessionInfo.FromString(info).session_id
    sid = target.fuzz_sid
    ops = [pb.OpCall(op="tensor", outputs=["f"], data=pb.TensorData(shape=[2, 3],
                                                                    values=[1, 2, 3, 4, 5, 6])),
           pb.OpCall(op="requires_grad_", inputs=[pb.Operand(tensor="f")]),
           pb.OpCall(op="tensor", outputs=["i"], data=pb.TensorData(
               shape=[3], dtype="int64", values=[0, 1, 2])),
           pb.OpCall(op="tensor", outputs=["b"], data=pb.TensorData(
               shape=[2], dtype="bool", values=[1, 0])),
           pb.OpCall(op="mul", inputs=[pb.Operand(tensor="f"), pb.Operand(float=2.0)],
                     outputs=["g"]),
           pb.OpCall(op="sum", inputs=[pb.Operand(tensor="g")], outputs=["loss"]),
           pb.OpCall(op="getitem", inputs=[pb.Operand(tensor="g")], outputs=["v"])]
    ops[-1].attrs.update({"key": [["int", 0]]})
    request = pb.RunOpsRequest(session_id=sid, ops=ops).SerializeToString()
    code, _, _ = target.call("RunOps", request)
    if code == grpc.StatusCode.NOT_FOUND:  # the fuzzer closed it: start another
        target.fuzz_sid = None
        return _seed(target)
    assert code == grpc.StatusCode.OK, code
    return sid


def _check(target, method: str, request, metadata=()) -> None:
    code, responses, trailer = target.call(method, request, metadata)
    assert code in ALLOWED, f"{method} answered {code}"
    assert code == grpc.StatusCode.OK or trailer, f"{method}: {code} without the Error trailer"
    if method == "Pipeline":
        for raw in responses:
            reply = pb.PipelineResponse.FromString(raw)
            if reply.HasField("error"):
                assert reply.error.code in ALLOWED_VALUES, reply.error
    assert target.alive()


def _bytes(message) -> bytes:
    return message.SerializeToString()


# -- properties -------------------------------------------------------------------------------
@fuzz(400)
@given(data=st.data())
def test_run_ops(target, data):
    sid = _seed(target)
    req = pb.RunOpsRequest(session_id=data.draw(session_ids(sid)),
                           ops=data.draw(st.lists(op_calls(), min_size=1, max_size=3)),
                           release=data.draw(st.lists(ids, max_size=2)))
    _check(target, "RunOps", _bytes(req))


@fuzz(400)
@given(data=st.data())
def test_pipeline_streams(target, data):
    sid = _seed(target)
    messages = [_bytes(data.draw(pipeline_requests(sid)))
                for _ in range(data.draw(st.integers(1, 2)))]
    if data.draw(st.integers(0, 6)) == 0:
        messages.insert(data.draw(st.integers(0, len(messages))),
                        data.draw(st.binary(min_size=1, max_size=30)))
    _check(target, "Pipeline", messages)


@fuzz(300)
@given(data=st.data())
def test_uploads(target, data):
    _check(target, "Upload", data.draw(upload_streams(_seed(target))))


@fuzz(500)
@given(data=st.data())
def test_autograd_fetch_and_the_rest(target, data):
    sid = _seed(target)
    method = data.draw(st.sampled_from(["Backward", "Grad", "Fetch", "Release", "ListTensors",
                                        "DescribeSession", "CloseSession", "CreateSession",
                                        "RestoreSession", "ListOps"]))
    metadata = ()
    if method == "Backward":
        req = data.draw(backward_requests(sid))
    elif method == "Grad":
        req = data.draw(grad_requests(sid))
    elif method == "Fetch":
        req = data.draw(fetch_requests(sid))
    elif method == "Release":
        req = pb.ReleaseRequest(session_id=data.draw(session_ids(sid)),
                                ids=data.draw(st.lists(ids, max_size=3)))
    elif method in ("ListTensors", "DescribeSession"):
        req = pb.SessionRef(session_id=data.draw(session_ids(sid)))
    elif method == "CloseSession":  # now and then the fuzz session itself: made again
        req = pb.SessionRef(session_id=data.draw(st.one_of(ids, st.just(sid))))
    elif method == "CreateSession":
        req = pb.CreateSessionRequest(device=data.draw(st.one_of(st.sampled_from(
            ["", "cpu", "cuda", "cuda:1", "tpu"]), st.text(max_size=8))))
        proposed = data.draw(st.one_of(st.none(), st.text(st.characters(
            min_codepoint=0x21, max_codepoint=0x7e), max_size=70)))  # what a header may hold
        metadata = () if proposed is None else (("x-session-id", proposed),)
    elif method == "RestoreSession":
        req = pb.RestoreSessionRequest(session_id=data.draw(session_ids(sid)),
                                       epoch=data.draw(st.integers(0, 5)))
    else:
        req = pb.ListOpsRequest()
    _check(target, method, _bytes(req), metadata)


@fuzz(600)
@given(method=st.sampled_from([m.name for m in SERVICE.methods]),
       garbage=st.lists(st.binary(max_size=64), min_size=1, max_size=3))
def test_raw_bytes_to_every_method(target, method, garbage):
    m = SERVICE.methods_by_name[method]
    _check(target, method, garbage if m.client_streaming else garbage[0])


def test_the_server_held_up(target):
    """Runs after the properties above (file order): alive, within its limits, and the
    healthy session computed every step exactly."""
    assert target.alive()
    healthy = target.healthy
    assert healthy.steps > 0 and healthy.failures == []
    now = proc_status(target.proc.pid)
    # Nothing was allocated past the byte limit before being refused: peak resident memory
    # stays within the limit (and the fuzz session's share) of where it started, and no
    # huge declared size was ever reserved, even untouched.
    assert now["VmHWM"] - target.started["VmRSS"] < 4 * LIMIT + (64 << 20), now
    assert now["VmPeak"] - target.started["VmPeak"] < 4 << 30, now
