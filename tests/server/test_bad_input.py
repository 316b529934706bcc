"""Bad input over the wire: the right status code, a clear message, and a server (and session)
that keeps working afterwards, proven by running the seed example in the same session."""

from __future__ import annotations

import random
import struct

import grpc
import numpy as np
import pytest
from gradserve.v1 import gradserve_pb2 as pb

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
FAILED = grpc.StatusCode.FAILED_PRECONDITION
EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED


def _data(**kw) -> pb.TensorData:
    return pb.TensorData(**kw)


# (name, ops, expected code, message fragment); each runs after the seed ops' tensors exist
BAD_OPS = [
    ("unknown op", [("xyz", ["input"], ["o"], {})], INVALID, "op 0 (xyz at bad.py:1): unknown "
     "op 'xyz'"),
    ("too few inputs", [("mul", ["input"], ["o"], {})], INVALID,
     "mul() missing 1 required positional argument"),
    ("too many outputs", [("mul", ["input", "w1"], ["o", "p"], {})], INVALID,
     "mul returns 1 tensor(s) but 2 output id(s) were given"),
    ("no outputs", [("mul", ["input", "w1"], [], {})], INVALID, "but 0 output id(s)"),
    ("multi-output arity", [("max_dim", ["input"], ["v"], {"attrs": {"dim": 0}})], INVALID,
     "max_dim returns 2 tensor(s)"),
    ("broadcast shapes", [("tensor", [], ["t3"], {"data": _data(shape=[3], values=[1, 2, 3])}),
                          ("add", ["input", "t3"], ["o"], {})], INVALID, "op 1 (add"),
    ("matmul shapes", [("tensor", [], ["t3"], {"data": _data(shape=[3], values=[1, 2, 3])}),
                       ("matmul", ["input", "t3"], ["o"], {})], INVALID, "op 1 (matmul"),
    ("reshape numel", [("reshape", ["input"], ["o"], {"attrs": {"shape": [5]}})], INVALID,
     "is invalid for input of size 4"),
    ("index out of range", [("getitem", ["input"], ["o"], {"attrs": {"key": [["int", 9]]}})],
     INVALID, "is out of bounds for dimension 0"),
    ("unknown input id", [("mul", ["input", "ghost"], ["o"], {})], NOT_FOUND,
     "tensor 'ghost' not found"),
    ("empty operand", [("neg", [None], ["o"], {})], INVALID, "input 0 is empty"),
    ("empty output id", [("neg", ["input"], [""], {})], INVALID, "non-empty"),
    ("garbage attr type", [("sum", ["input"], ["o"], {"attrs": {"dim": "abc"}})], INVALID, ""),
    ("unknown attr", [("neg", ["input"], ["o"], {"attrs": {"bogus": 1}})], INVALID,
     "neg() got an unexpected keyword argument 'bogus'"),
    ("bad __floats__", [("neg", ["input"], ["o"], {"attrs": {"__floats__": 3}})], INVALID,
     "__floats__"),
    ("device not served", [("zeros", [], ["o"], {"attrs": {"shape": [2], "dtype": "float32",
                                                           "device": "cuda:0"}})],
     FAILED, "device cuda:0 is not served here (devices: cpu)"),
    ("data on a registry op", [("neg", ["input"], ["o"], {"data": _data(values=[1])})], INVALID,
     "only 'tensor' takes data"),
    ("in-place with outputs", [("add", ["l1", 1.0], ["o"], {"inplace": True})], INVALID,
     "binds no outputs"),
    ("in-place on scalar", [("add", [1.0, 1.0], [], {"inplace": True})], INVALID,
     "needs a tensor as input 0"),
    ("backward counts", [("backward", ["w1", "w2", "w2"], [], {"attrs": {"grads": 2}})], INVALID,
     "'backward' takes the roots, then none or one gradient per root"),
    ("backward count type", [("backward", ["w1"], [], {"attrs": {"inputs": "x"}})], INVALID,
     "must be counts"),
    ("command arity", [("retain_grad", ["input", "w1"], [], {})], INVALID,
     "'retain_grad' takes 1 input(s), got 2"),
    ("op arity", [("detach", ["input", "w1"], ["o"], {})], INVALID,
     "detach() takes 1 positional argument but 2 were given"),
    ("command scalar input", [("retain_grad", [1.0], [], {})], INVALID, "must be a tensor id"),
    ("seed not an int", [("manual_seed", [], [], {"attrs": {"seed": "x"}})], INVALID,
     "integer attr 'seed'"),
    ("requires_grad on ints", [("tensor", [], ["o"], {"data": _data(dtype="int64", values=[1]),
                                                      "attrs": {"requires_grad": True}})],
     FAILED, "only Tensors of floating point"),
    ("requires_grad not a bool", [("tensor", [], ["o"], {"data": _data(values=[1]),
                                                         "attrs": {"requires_grad": "yes"}})],
     INVALID, "must be true or false"),
    # TensorData
    ("tensor without data", [("tensor", [], ["o"], {})], INVALID, "needs data"),
    ("values count", [("tensor", [], ["o"], {"data": _data(shape=[2, 2], values=[1, 2, 3])})],
     INVALID, "3 values given for shape [2, 2], which holds 4"),
    ("truncated raw", [("tensor", [], ["o"], {"data": _data(shape=[4], raw=b"\0" * 15)})],
     INVALID, "raw has 15 bytes but shape [4] of float32 needs 16"),
    ("oversized raw", [("tensor", [], ["o"], {"data": _data(shape=[4], raw=b"\0" * 17)})],
     INVALID, "raw has 17 bytes"),
    ("values and raw", [("tensor", [], ["o"], {"data": _data(values=[1], raw=b"\0" * 4)})],
     INVALID, "not both"),
    ("unknown dtype", [("tensor", [], ["o"], {"data": _data(dtype="complex64", values=[1])})],
     INVALID, "unknown dtype 'complex64'"),
    ("negative dim", [("tensor", [], ["o"], {"data": _data(shape=[-1], values=[1])})], INVALID,
     "negative dimension"),
    ("huge shape", [("tensor", [], ["o"], {"data": _data(shape=[1 << 40, 1 << 40],
                                                         values=[1])})], INVALID, "too large"),
    ("too many dims", [("tensor", [], ["o"], {"data": _data(shape=[1] * 65)})], INVALID,
     "at most 64 dims"),
    ("fractional int64", [("tensor", [], ["o"], {"data": _data(dtype="int64", values=[1.5])})],
     INVALID, "not a valid int64"),
    ("nan int64", [("tensor", [], ["o"], {"data": _data(dtype="int64",
                                                        values=[float("nan")])})],
     INVALID, "not a valid int64"),
]


def _call(spec, site: str) -> pb.OpCall:
    name, inputs, outputs, fields = spec
    call = pb.OpCall(op=name, outputs=outputs, site=site)
    for x in inputs:
        if x is None:
            call.inputs.add()
        elif isinstance(x, str):
            call.inputs.add(tensor=x)
        else:
            call.inputs.add(float=x)
    if "attrs" in fields:
        call.attrs.update(fields["attrs"])
    if "data" in fields:
        call.data.CopyFrom(fields["data"])
    call.inplace = fields.get("inplace", False)
    return call


@pytest.fixture(scope="module")
def session(stub, wire):
    sid = stub.CreateSession(pb.CreateSessionRequest()).session_id
    stub.RunOps(pb.RunOpsRequest(session_id=sid, ops=wire.seed_ops()))
    return sid


@pytest.mark.parametrize("name,specs,code,fragment", BAD_OPS, ids=[c[0] for c in BAD_OPS])
def test_bad_op(stub, wire, session, name, specs, code, fragment):
    ops = [_call(spec, f"bad.py:{i + 1}") for i, spec in enumerate(specs)]
    err = wire.expect_error(lambda: stub.RunOps(pb.RunOpsRequest(session_id=session, ops=ops)),
                            code, fragment)
    detail = wire.error_detail(err)
    assert detail.op_index == len(ops) - 1 and detail.op == ops[-1].op
    assert detail.site == f"bad.py:{len(ops)}"
    wire.run_seed(stub, session, prefix=name.replace(" ", "_") + ".")


def test_bad_session_ids(stub, wire):
    made_up = pb.RunOpsRequest(session_id="not-a-session", ops=wire.seed_ops())
    err = wire.expect_error(lambda: stub.RunOps(made_up), NOT_FOUND,
                            "session not-a-session not found: this server process (instance ",
                            "never held it")
    assert wire.error_detail(err).reason == "unknown"
    wire.expect_error(lambda: stub.RunOps(pb.RunOpsRequest(ops=wire.seed_ops())), INVALID,
                      "session_id is empty")
    sid = stub.CreateSession(pb.CreateSessionRequest()).session_id
    stub.CloseSession(pb.SessionRef(session_id=sid))
    for call in (lambda: stub.RunOps(pb.RunOpsRequest(session_id=sid)),
                 lambda: stub.Backward(pb.BackwardRequest(session_id=sid, tensors=["x"])),
                 lambda: list(stub.Fetch(pb.FetchRequest(session_id=sid, ids=["x"]))),
                 lambda: stub.CloseSession(pb.SessionRef(session_id=sid)),
                 lambda: stub.ListTensors(pb.SessionRef(session_id=sid))):
        wire.expect_error(call, NOT_FOUND, f"session {sid} not found")
    wire.expect_error(lambda: stub.CreateSession(pb.CreateSessionRequest(device="tpu")),
                      INVALID, "Expected one of cpu, cuda")
    wire.expect_error(lambda: stub.CreateSession(pb.CreateSessionRequest(device="cuda:3")),
                      FAILED, "device cuda:3 is not served here (devices: cpu)")
    wire.run_seed(stub)


def test_autograd_errors_are_failed_precondition(stub, wire, session):
    wire.run_seed(stub, session, prefix="ag.")
    for request, fragment in [
        (pb.BackwardRequest(session_id=session, tensors=["ag.loss"]), "backward through the "
         "graph a second time"),
        (pb.BackwardRequest(session_id=session, tensors=["ag.input"]), "does not require grad"),
        (pb.BackwardRequest(session_id=session, tensors=["ag.l1"]), "only for scalar outputs"),
    ]:
        wire.expect_error(lambda r=request: stub.Backward(r), FAILED, fragment)
    wire.expect_error(lambda: stub.Backward(pb.BackwardRequest(session_id=session,
                                                               tensors=["ghost"])),
                      NOT_FOUND, "tensor 'ghost' not found")
    wire.expect_error(lambda: stub.Backward(pb.BackwardRequest(session_id=session)), INVALID)
    wire.run_seed(stub, session, prefix="ag2.")


def test_bad_fetch_and_upload(stub, wire, session):
    wire.expect_error(lambda: list(stub.Fetch(pb.FetchRequest(session_id=session, ids=["input"],
                                                              encoding=7))),
                      INVALID, "unknown encoding 7")
    wire.expect_error(lambda: list(stub.Fetch(pb.FetchRequest(session_id=session,
                                                              ids=["ghost"]))),
                      NOT_FOUND, "tensor 'ghost' not found")

    def upload(*messages):
        return stub.Upload(iter(messages))

    header = pb.UploadRequest(session_id=session, id="u",
                              tensor=pb.TensorData(shape=[4], dtype="float32"))
    wire.expect_error(lambda: upload(header, pb.UploadRequest(chunk=b"\0" * 15)), INVALID,
                      "truncated: got 15 of 16 bytes")
    wire.expect_error(lambda: upload(header, pb.UploadRequest(chunk=b"\0" * 12),
                                     pb.UploadRequest(chunk=b"\0" * 8)),
                      INVALID, "sent more than the 16 bytes")
    wire.expect_error(lambda: upload(), INVALID, "empty upload")
    # numpy cannot even describe it, though it holds nothing (found by tests/fuzz)
    wire.expect_error(lambda: upload(pb.UploadRequest(session_id=session, id="z", tensor=
                                                      pb.TensorData(shape=[0, 1 << 62]))),
                      INVALID, "shape [0, 4611686018427387904] is too large for a float32")
    wire.expect_error(lambda: upload(pb.UploadRequest(session_id="nope", id="u")), NOT_FOUND)
    ok = upload(header, pb.UploadRequest(chunk=np.arange(4, dtype="<f4").tobytes()))
    assert ok.info.id == "u" and list(ok.info.shape) == [4]
    assert wire.fetch(stub, session, ["u"])["u"].tolist() == [0, 1, 2, 3]
    wire.run_seed(stub, session, prefix="up.")


# -- fuzzing --------------------------------------------------------------------------------
OP_NAMES = ["mul", "add", "sum", "mean", "reshape", "getitem", "matmul", "zeros", "randn",
            "full", "cat", "max_dim", "clamp", "to", "tensor", "grad", "set_grad", "detach_",
            "manual_seed", "set_data", "", "\x00", "x" * 300, "__class__", "eye", "arange"]
IDS = ["input", "w1", "w2", "l1", "l2", "loss", "", "ghost", "é", "\x00", "z" * 200]
STRINGS = ["", "float32", "int64", "bool", "float64", "cuda:0", "cpu", "nan", "x" * 100, "☃"]
NUMBERS = [0, 1, -1, 2, 0.5, -7.25, 1e300, -1e300, float("nan"), float("inf"), 2 ** 62, 1e20]
ALLOWED = {INVALID, NOT_FOUND, FAILED, EXHAUSTED}


def _random_value(rng: random.Random, depth: int = 0):
    kind = rng.randrange(6 if depth < 2 else 4)
    if kind == 0:
        return rng.choice(NUMBERS)
    if kind == 1:
        return rng.choice(STRINGS)
    if kind == 2:
        return rng.choice([True, False, None])
    if kind == 3:
        return rng.randrange(-3, 5)
    if kind == 4:
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {rng.choice(["a", "dim", "shape"]): _random_value(rng, depth + 1)}


def _mutate(rng: random.Random, call: pb.OpCall) -> pb.OpCall:
    call = pb.OpCall.FromString(call.SerializeToString())
    field = rng.choice(["op", "inputs", "outputs", "attrs", "flags", "data", "site", "bytes"])
    if field == "op":
        call.op = rng.choice(OP_NAMES)
    elif field == "inputs":
        del call.inputs[:]
        for _ in range(rng.randrange(4)):
            x = call.inputs.add()
            kind = rng.randrange(5)
            if kind == 0:
                x.tensor = rng.choice(IDS)
            elif kind == 1:
                x.float = rng.choice([v for v in NUMBERS if isinstance(v, float)])
            elif kind == 2:
                x.int = rng.choice([0, 1, -1, 2 ** 63 - 1, -(2 ** 63)])
            elif kind == 3:
                x.bool = rng.random() < 0.5
    elif field == "outputs":
        del call.outputs[:]
        call.outputs.extend(rng.choice(IDS + ["new"]) for _ in range(rng.randrange(4)))
    elif field == "attrs":
        call.attrs.Clear()
        names = ["dim", "shape", "keepdim", "key", "dtype", "device", "value", "seed",
                 "requires_grad", "__floats__", "min", "max", "start", "end", "n", "junk"]
        for _ in range(rng.randrange(4)):
            call.attrs.update({rng.choice(names): _random_value(rng)})
    elif field == "flags":
        call.no_grad, call.inplace = rng.random() < 0.5, rng.random() < 0.5
    elif field == "data":
        d = call.data
        d.Clear()
        d.shape.extend(rng.choice([0, 1, 2, 3, -1, 1 << 40]) for _ in range(rng.randrange(4)))
        d.dtype = rng.choice(STRINGS)
        if rng.random() < 0.5:
            d.values.extend(rng.choice([v for v in NUMBERS if isinstance(v, (int, float))])
                            for _ in range(rng.randrange(10)))
        else:
            d.raw = rng.randbytes(rng.randrange(40))
    elif field == "site":
        call.site = rng.choice(STRINGS)
    else:  # flip bytes of the serialized message; skip mutants protobuf itself rejects
        raw = bytearray(call.SerializeToString())
        for _ in range(rng.randrange(1, 4)):
            if raw:
                raw[rng.randrange(len(raw))] = rng.randrange(256)
        try:
            call = pb.OpCall.FromString(bytes(raw))
        except Exception:
            pass
    return call


def test_fuzz_every_field(stub, wire):
    rng = random.Random(20240607)
    sid = stub.CreateSession(pb.CreateSessionRequest()).session_id
    templates = wire.seed_ops() + [
        wire.op("sum", ["l1"], ["s"], attrs={"dim": [0], "keepdim": True}),
        wire.op("zeros", outputs=["z"], attrs={"shape": [2, 2], "dtype": "float32"}),
        wire.op("getitem", ["l1"], ["g"], attrs={"key": [["int", 0]]}),
        wire.op("clamp", ["l1"], ["c"], attrs={"min": 0.5, "__floats__": ["min"]}),
        wire.tensor_op("r", [], shape=(2,)),
    ]
    templates[-1].data.raw = struct.pack("<2f", 1, 2)
    stub.RunOps(pb.RunOpsRequest(session_id=sid, ops=wire.seed_ops()))
    codes = set()
    for i in range(400):
        call = rng.choice(templates)
        for _ in range(rng.randrange(1, 4)):
            call = _mutate(rng, call)
        try:
            stub.RunOps(pb.RunOpsRequest(session_id=sid, ops=[call]), timeout=10)
            codes.add(grpc.StatusCode.OK)
        except grpc.RpcError as err:
            assert err.code() in ALLOWED, (i, call, err.code(), err.details())
            assert err.details() and wire.error_detail(err).kind
            codes.add(err.code())
        if i % 100 == 99:
            wire.run_seed(stub, sid, prefix=f"fuzz{i}.")
    assert {grpc.StatusCode.OK, INVALID} <= codes
    # the session and server still work
    wire.run_seed(stub, sid, prefix="after.")
    wire.run_seed(stub)


def test_fuzz_other_requests(stub, wire):
    rng = random.Random(99)
    sid = stub.CreateSession(pb.CreateSessionRequest()).session_id
    wire.run_seed(stub, sid)
    for _ in range(150):
        ids = [rng.choice(IDS) for _ in range(rng.randrange(3))]
        kind = rng.randrange(4)
        try:
            if kind == 0:
                stub.Backward(pb.BackwardRequest(
                    session_id=sid, tensors=ids, grad_tensors=[rng.choice(IDS)] * rng.randrange(2),
                    create_graph=rng.random() < 0.3, inputs=ids[:1]))
            elif kind == 1:
                stub.Grad(pb.GradRequest(session_id=sid, outputs=ids, inputs=ids[::-1],
                                         results=[rng.choice(IDS) for _ in ids],
                                         allow_unused=rng.random() < 0.5, retain_graph=True))
            elif kind == 2:
                list(stub.Fetch(pb.FetchRequest(session_id=sid, ids=ids, grad=rng.random() < .5,
                                                encoding=rng.randrange(4))))
            else:
                stub.Upload(iter([pb.UploadRequest(
                    session_id=sid, id=rng.choice(IDS), requires_grad=rng.random() < 0.5,
                    tensor=pb.TensorData(shape=[rng.randrange(-1, 4)], dtype=rng.choice(STRINGS),
                                         raw=rng.randbytes(rng.randrange(20))))]))
        except grpc.RpcError as err:
            assert err.code() in ALLOWED, (kind, ids, err.code(), err.details())
    wire.run_seed(stub, sid, prefix="after.")
