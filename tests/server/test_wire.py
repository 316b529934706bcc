"""The service over the wire with the generated stubs: every RPC, commands, Pipeline."""

from __future__ import annotations

import concurrent.futures

import grpc
import numpy as np
import pytest
from google.protobuf import struct_pb2
from gradserve.v1 import gradserve_pb2 as pb

INVALID = grpc.StatusCode.INVALID_ARGUMENT


@pytest.fixture
def sid(stub):
    session = stub.CreateSession(pb.CreateSessionRequest(device="cpu")).session_id
    yield session
    try:
        stub.CloseSession(pb.SessionRef(session_id=session))
    except grpc.RpcError:
        pass


def test_seed_example_in_process(stub, wire):
    result = wire.run_seed(stub)
    assert result["grads"]["w1"].dtype == np.float64  # values travel as doubles


def test_session_info_describe_close(stub, wire):
    info = stub.CreateSession(pb.CreateSessionRequest())
    assert info.device == "cpu" and info.owner == "anonymous" and len(info.session_id) >= 20
    wire.run_seed(stub, info.session_id)
    described = stub.DescribeSession(pb.SessionRef(session_id=info.session_id))
    assert described.tensor_count == 6
    assert described.bytes == 4 * 4 * 3 + 4 * 5  # input, l1, l2; w1, w2, loss, 2 grads
    assert stub.CloseSession(pb.SessionRef(session_id=info.session_id)).freed_tensors == 6
    err = wire.expect_error(
        lambda: stub.DescribeSession(pb.SessionRef(session_id=info.session_id)),
        grpc.StatusCode.NOT_FOUND, f"session {info.session_id} not found: it was closed ")
    detail = wire.error_detail(err)
    assert detail.reason == "closed" and detail.instance_id == info.instance_id
    assert len(info.instance_id) == 12


def test_session_ids_are_unguessable(stub):
    ids = {stub.CreateSession(pb.CreateSessionRequest()).session_id for _ in range(20)}
    assert len(ids) == 20 and all(len(i) >= 22 for i in ids)
    for i in ids:
        stub.CloseSession(pb.SessionRef(session_id=i))


def test_raw_fetch_and_dtypes(stub, sid, wire):
    ops = [
        wire.tensor_op("f64", [1.5, -2.25], shape=(2,), dtype="float64"),
        wire.tensor_op("i64", [-3, 2 ** 40], shape=(2,), dtype="int64"),
        wire.tensor_op("b", [0, 1, 2], shape=(3,), dtype="bool"),
        wire.op("tensor", outputs=["r"], data=pb.TensorData(
            shape=[2], dtype="float32", raw=np.array([0.5, 7], "<f4").tobytes())),
    ]
    infos = stub.RunOps(pb.RunOpsRequest(session_id=sid, ops=ops)).outputs
    assert [t.dtype for t in infos] == ["float64", "int64", "bool", "float32"]
    raw = wire.fetch(stub, sid, ["f64", "i64", "b", "r"], raw=True)
    assert raw["f64"].tolist() == [1.5, -2.25] and raw["i64"].tolist() == [-3, 2 ** 40]
    assert raw["b"].tolist() == [False, True, True] and raw["r"].tolist() == [0.5, 7.0]
    values = wire.fetch(stub, sid, ["b", "i64"])
    assert values["b"].tolist() == [0, 1, 1] and values["i64"].tolist() == [-3, 2 ** 40]


def test_nan_and_inf_are_legal_values(stub, sid, wire):
    stub.RunOps(pb.RunOpsRequest(session_id=sid, ops=[
        wire.tensor_op("x", [float("nan"), float("inf"), -float("inf")], shape=(3,)),
        wire.op("mul", ["x", 2.0], ["y"]),
    ]))
    y = wire.fetch(stub, sid, ["y"])["y"]
    assert np.isnan(y[0]) and y[1] == np.inf and y[2] == -np.inf


def test_attrs_ints_floats_and_factory_device(stub, sid, wire):
    ops = [
        wire.op("full", outputs=["fi"], attrs={"shape": [2], "value": 2}),
        wire.op("full", outputs=["ff"], attrs={"shape": [2], "value": 2.0,
                                               "__floats__": ["value"]}),
        wire.op("zeros", outputs=["z"], attrs={"shape": [2, 3], "dtype": "float64"}),
        wire.op("arange", outputs=["a"], attrs={"start": 0, "end": 6}),
        wire.op("reshape", ["a"], ["a23"], attrs={"shape": [2, 3]}),
        wire.op("sum", ["a23"], ["s"], attrs={"dim": [0, 1], "keepdim": True}),
    ]
    infos = {t.id: t for t in stub.RunOps(pb.RunOpsRequest(session_id=sid, ops=ops)).outputs}
    assert infos["fi"].dtype == "int64" and infos["ff"].dtype == "float32"
    assert infos["z"].device == "cpu" and list(infos["z"].shape) == [2, 3]
    assert list(infos["s"].shape) == [1, 1]
    assert wire.fetch(stub, sid, ["s"])["s"].tolist() == [[15]]


def test_multi_output_op_and_getitem(stub, sid, wire):
    stub.RunOps(pb.RunOpsRequest(session_id=sid, ops=[
        wire.tensor_op("x", [1, 5, 3, 2], shape=(2, 2), requires_grad=True),
        wire.op("max_dim", ["x"], ["v", "i"], attrs={"dim": 1}),
        wire.op("getitem", ["x"], ["row"], attrs={"key": [["int", 1]]}),
        wire.op("getitem", ["x"], ["col"], attrs={"key": [["slice", None, None, None],
                                                          ["int", 0]]}),
    ]))
    got = wire.fetch(stub, sid, ["v", "i", "row", "col"])
    assert got["v"].tolist() == [5, 3] and got["i"].tolist() == [1, 0]
    assert got["row"].tolist() == [3, 2] and got["col"].tolist() == [1, 3]


def test_session_commands(stub, sid, wire):
    run = lambda *ops: stub.RunOps(pb.RunOpsRequest(session_id=sid, ops=list(ops))).outputs  # noqa: E731
    run(wire.tensor_op("x", [1, 2], shape=(2,)),
        wire.op("requires_grad_", ["x"]),
        wire.op("mul", ["x", 3.0], ["y"]),
        wire.op("retain_grad", ["y"]),
        wire.op("sum", ["y"], ["s"]))
    stub.Backward(pb.BackwardRequest(session_id=sid, tensors=["s"]))
    infos = {t.id: t for t in stub.ListTensors(pb.SessionRef(session_id=sid)).tensors}
    assert infos["x"].has_grad and infos["y"].has_grad and not infos["s"].has_grad
    out = run(wire.op("grad", ["x"], ["gx"]), wire.op("detach", ["y"], ["yd"]),
              wire.op("data", ["y"], ["ydata"]))
    assert [t.requires_grad for t in out] == [False, False, False]
    assert wire.fetch(stub, sid, ["gx"])["gx"].tolist() == [3, 3]
    run(wire.op("set_grad", ["x"]))  # x.grad = None
    assert wire.fetch(stub, sid, ["x"], grad=True)["x"] is None
    wire.expect_error(lambda: run(wire.op("grad", ["x"], ["g2"])),
                      grpc.StatusCode.FAILED_PRECONDITION, "has no grad")
    run(wire.tensor_op("g", [7, 8], shape=(2,)), wire.op("set_grad", ["x", "g"]))
    assert wire.fetch(stub, sid, ["x"], grad=True)["x"].tolist() == [7, 8]
    run(wire.tensor_op("n", [9, 9], shape=(2,)), wire.op("set_data", ["yd", "n"]),
        wire.op("detach_", ["y"]))
    infos = {t.id: t for t in stub.ListTensors(pb.SessionRef(session_id=sid)).tensors}
    assert not infos["y"].requires_grad and infos["y"].is_leaf
    assert wire.fetch(stub, sid, ["yd"])["yd"].tolist() == [9, 9]


def test_manual_seed_is_per_session(stub, wire):
    def draw(seed):
        sid = stub.CreateSession(pb.CreateSessionRequest()).session_id
        stub.RunOps(pb.RunOpsRequest(session_id=sid, ops=[
            wire.op("manual_seed", attrs={"seed": seed}),
            wire.op("randn", outputs=["r"], attrs={"shape": [4], "dtype": "float32"})]))
        value = wire.fetch(stub, sid, ["r"], raw=True)["r"]
        stub.CloseSession(pb.SessionRef(session_id=sid))
        return value

    assert np.array_equal(draw(7), draw(7))
    assert not np.array_equal(draw(7), draw(8))


def test_inplace_no_grad_and_versions(stub, sid, wire):
    out = stub.RunOps(pb.RunOpsRequest(session_id=sid, ops=[
        wire.tensor_op("w", [1, 2], shape=(2,), requires_grad=True),
        wire.op("mul", ["w", 2.0], ["h"]),
        wire.op("add", ["h", 1.0], inplace=True),
        wire.op("mul", ["w", 2.0], ["ng"], no_grad=True),
    ])).outputs
    infos = {t.id: t for t in out}
    assert infos["h"].version == 1 and infos["h"].grad_fn == "AddBackward0"
    assert not infos["ng"].requires_grad and infos["ng"].grad_fn == ""
    wire.expect_error(
        lambda: stub.RunOps(pb.RunOpsRequest(session_id=sid, ops=[
            wire.op("add", ["w", 1.0], inplace=True, site="t.py:3")])),
        grpc.StatusCode.FAILED_PRECONDITION, "op 0 (add at t.py:3): a leaf Variable")
    stub.RunOps(pb.RunOpsRequest(session_id=sid, ops=[
        wire.op("add", ["w", 1.0], inplace=True, no_grad=True)]))
    assert wire.fetch(stub, sid, ["w"])["w"].tolist() == [2, 3]


def test_backward_options_and_grad(stub, sid, wire):
    stub.RunOps(pb.RunOpsRequest(session_id=sid, ops=[
        wire.tensor_op("x", [1, 2], shape=(2,), requires_grad=True),
        wire.tensor_op("u", [5], requires_grad=True),
        wire.op("mul", ["x", "x"], ["y"]),
        wire.tensor_op("gy", [1, 10], shape=(2,)),
        wire.op("sum", ["y"], ["s"]),
    ]))
    resp = stub.Grad(pb.GradRequest(session_id=sid, outputs=["s"], inputs=["x", "u"],
                                    results=["dx", "du"], allow_unused=True,
                                    retain_graph=True))
    assert list(resp.defined) == [True, False]
    assert wire.fetch(stub, sid, ["dx"])["dx"].tolist() == [2, 4]
    stub.Backward(pb.BackwardRequest(session_id=sid, tensors=["y"], grad_tensors=["gy"]))
    assert wire.fetch(stub, sid, ["x"], grad=True)["x"].tolist() == [2, 40]
    wire.expect_error(lambda: stub.Backward(pb.BackwardRequest(session_id=sid, tensors=["y"])),
                      grpc.StatusCode.FAILED_PRECONDITION, "implicitly created only for scalar")
    wire.expect_error(lambda: stub.Grad(pb.GradRequest(session_id=sid, outputs=["s"],
                                                       inputs=["x"], results=[])),
                      INVALID, "one result id per input")


def test_release_and_list(stub, sid, wire):
    stub.RunOps(pb.RunOpsRequest(session_id=sid, ops=wire.seed_ops(), release=["l1", "nope"]))
    ids = [t.id for t in stub.ListTensors(pb.SessionRef(session_id=sid)).tensors]
    assert ids == ["input", "w1", "w2", "l2", "loss"]
    # the graph still holds what backward needs after l1's id is gone
    stub.Backward(pb.BackwardRequest(session_id=sid, tensors=["loss"]))
    assert stub.Release(pb.ReleaseRequest(session_id=sid, ids=["l2", "loss", "x"])).released == 2
    assert wire.fetch(stub, sid, ["w1"], grad=True)["w1"] == 2.5


def test_error_detail_names_op_and_site(stub, sid, wire):
    ops = [*wire.seed_ops(), wire.op("reshape", ["l1"], ["r"], attrs={"shape": [3]},
                                     site="train.py:12")]
    err = wire.expect_error(lambda: stub.RunOps(pb.RunOpsRequest(session_id=sid, ops=ops)),
                            INVALID, "op 6 (reshape at train.py:12): shape '[3]' is invalid")
    detail = wire.error_detail(err)
    assert (detail.op_index, detail.op, detail.site, detail.kind) == (
        6, "reshape", "train.py:12", "InvalidArgumentError")
    # the ops before the failing one kept their effect
    assert wire.fetch(stub, sid, ["loss"])["loss"] == 8.0
    err = wire.expect_error(lambda: stub.DescribeSession(pb.SessionRef(session_id="nope")),
                            grpc.StatusCode.NOT_FOUND)
    assert wire.error_detail(err).op_index == -1
    assert wire.error_detail(err).kind == "SessionNotFoundError"


def test_pipeline(stub, sid, wire):
    def requests():
        yield pb.PipelineRequest(session_id=sid, seq=1, ops=wire.seed_ops(),
                                 list=pb.ListTensorsRequest(ids=["loss"]))
        yield pb.PipelineRequest(session_id=sid, seq=2, ops=[wire.op("nope", ["l1"], ["z"])],
                                 backward=pb.BackwardRequest(tensors=["loss"]))
        yield pb.PipelineRequest(session_id=sid, seq=3,
                                 backward=pb.BackwardRequest(tensors=["loss"]))
        yield pb.PipelineRequest(session_id=sid, seq=4, release=["l1"],
                                 fetch=pb.FetchRequest(ids=["w1", "w2"], grad=True))
        yield pb.PipelineRequest(session_id=sid, seq=5, fetch=pb.FetchRequest(
            ids=["l2"], encoding=pb.ENCODING_RAW))
        yield pb.PipelineRequest(session_id="made-up", seq=6)
        yield pb.PipelineRequest(session_id=sid, seq=7, grad=pb.GradRequest(
            outputs=["loss"], inputs=["w1"], results=["g"]))

    replies = list(stub.Pipeline(requests()))
    assert [r.seq for r in replies] == [1, 2, 3, 4, 5, 6, 7]
    assert [t.grad_fn for t in replies[0].tensors] == ["MeanBackward0"]
    assert replies[1].error.code == INVALID.value[0] and replies[1].error.op == "nope"
    assert "unknown op 'nope'" in replies[1].error.message
    assert not replies[1].backward.grads_defined  # the action is skipped after an error
    assert not replies[2].HasField("error") and set(replies[2].backward.grads_defined) == {
        "w1", "w2"}
    assert [(f.id, list(f.tensor.values)) for f in replies[3].fetched] == [
        ("w1", [2.5]), ("w2", [1.0])]
    raw = replies[4].fetched[0]
    assert np.frombuffer(raw.tensor.raw, "<f4").tolist() == [5, 7, 9, 11] and raw.last
    assert replies[5].error.code == grpc.StatusCode.NOT_FOUND.value[0]
    assert replies[6].error.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]  # graph freed


def test_concurrent_sessions(address, wire):
    channel, stub = wire.connect(address)

    def one(i):
        return wire.run_seed(stub, prefix=f"t{i}_")["grads"][f"t{i}_w1"]

    with channel, concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert list(pool.map(one, range(16))) == [2.5] * 16


def test_same_session_calls_run_in_order(stub, sid, wire):
    stub.RunOps(pb.RunOpsRequest(session_id=sid, ops=[wire.tensor_op("c", [0])]))
    inc = pb.RunOpsRequest(session_id=sid, ops=[wire.op("add", ["c", 1.0], inplace=True)])
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: stub.RunOps(inc), range(40)))
    assert wire.fetch(stub, sid, ["c"])["c"] == 40.0


def test_struct_nulls_and_nested_values(stub, sid, wire):
    call = wire.op("clamp", ["x"], ["y"])
    call.attrs.update({"min": 0, "max": None})
    assert call.attrs.fields["max"].WhichOneof("kind") == "null_value"
    call.attrs.fields["min"].CopyFrom(struct_pb2.Value(number_value=1.5))
    out = stub.RunOps(pb.RunOpsRequest(session_id=sid, ops=[
        wire.tensor_op("x", [1, 2], shape=(2,)), call]))
    assert out.outputs[-1].id == "y"
    assert wire.fetch(stub, sid, ["y"])["y"].tolist() == [1.5, 2]


def test_list_ops_describes_the_registry(stub):
    from gradserve.engine import OPS

    ops = {o.name: o for o in stub.ListOps(pb.ListOpsRequest()).ops}
    assert set(ops) == set(OPS)
    mul, max_dim, cat, linear = ops["mul"], ops["max_dim"], ops["cat"], ops["linear"]
    assert (mul.kind, mul.min_inputs, mul.max_inputs, mul.differentiable) == ("op", 2, 2, True)
    assert [(a.name, a.required, a.default_json) for a in max_dim.attrs] == [
        ("dim", True, ""), ("keepdim", False, "false")]
    assert (cat.min_inputs, cat.max_inputs, [a.name for a in cat.attrs]) == (0, -1, ["dim"])
    assert (linear.min_inputs, linear.max_inputs) == (2, 3)  # the bias is optional
    assert not ops["eq"].differentiable
    zeros = {a.name: a for a in ops["zeros"].attrs}
    assert ops["zeros"].max_inputs == 0 and not zeros["device"].required
    tensor = ops["tensor"]
    assert (tensor.kind, tensor.max_inputs, tensor.max_outputs) == ("command", 1, 1)
    assert [(a.name, a.default_json) for a in ops["requires_grad_"].attrs] == [
        ("requires_grad", "true")]
    assert [(a.name, a.required) for a in ops["manual_seed"].attrs] == [("seed", True)]


def test_request_bytes_that_do_not_parse_are_invalid_argument(address, wire):
    """Every method, from the service descriptor, so methods added later are covered."""
    channel, _ = wire.connect(address)
    garbage = b"\xff\xff\xff\xff\x0f"  # a varint too long: no message parses it
    with channel:
        for m in pb.DESCRIPTOR.services_by_name["GradserveService"].methods:
            path = f"/gradserve.v1.GradserveService/{m.name}"
            kind = {(False, False): channel.unary_unary, (False, True): channel.unary_stream,
                    (True, False): channel.stream_unary,
                    (True, True): channel.stream_stream}[m.client_streaming, m.server_streaming]
            call = kind(path)
            request = iter([garbage]) if m.client_streaming else garbage
            err = wire.expect_error(lambda call=call, request=request, m=m: (
                list(call(request)) if m.server_streaming else call(request)),
                grpc.StatusCode.INVALID_ARGUMENT, "malformed", m.input_type.name)
            assert wire.error_detail(err).kind == "InvalidArgumentError"
