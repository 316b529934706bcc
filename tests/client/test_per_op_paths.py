"""The client's cheap paths agree with the plain ones: a captured step found by its running
key (client/_replay.py), Fetch chunks read in place (client/_wire.py), s.tensor reading the
caller's array without keeping it."""

from __future__ import annotations

import itertools
import pathlib

import gradserve as gs
import numpy as np
import pytest
from gradserve import _replay, _wire
from gradserve.server import _convert as convert
from gradserve.v1 import gradserve_pb2 as pb

HERE = pathlib.Path(__file__).name


def _key(ops):
    key, slots, values = _replay.batch_key(ops)
    return key, list(slots), values


def _variants():
    """Small batches that differ in one way each: slot pattern, scalar types, attrs, flags."""
    base = [("mul", ("a.1", "a.2"), ("a.3",), None, 0),
            ("add", ("a.3", 2.0), ("a.4",), None, 0),
            ("sum", ("a.4",), ("a.5",), {"dim": [0]}, 0)]
    out = [base]
    out.append([base[0], ("add", ("a.3", 2), ("a.4",), None, 0), base[2]])  # int, not float
    out.append([base[0], ("add", ("a.3", True), ("a.4",), None, 0), base[2]])  # bool
    out.append([base[0], ("add", ("a.3", "a.1"), ("a.4",), None, 0), base[2]])  # a tensor
    out.append([base[0], ("add", ("a.1", 2.0), ("a.4",), None, 0), base[2]])  # another slot
    out.append([("mul", ("a.1", "a.1"), ("a.3",), None, 0), *base[1:]])  # one input twice
    out.append([*base[:2], ("sum", ("a.4",), ("a.5",), {"dim": [1]}, 0)])  # another attr
    out.append([*base[:2], ("sum", ("a.4",), ("a.5",), {"dim": [0]}, 1)])  # another flag
    out.append([*base[:2], ("sum", ("a.4",), ("a.5",), {"dim": 0}, 0)])  # a list vs a number
    out.append([*base[:2], ("mean", ("a.4",), ("a.5",), {"dim": [0]}, 0)])  # another op
    out.append([*base[:2], ("sum", ("a.4",), ("a.5", "a.6"), {"dim": [0]}, 0)])  # outputs
    out.append([*base[:2], ("sum", ("a.4", "a.5"), (), {"dim": [0]}, 0)])  # inputs/outputs
    out.append([*base[:2], ("sum", ("a.4",), ("a.5",), {"dim": [0], "x": 0.5}, 0)])
    out.append([*base[:2], ("sum", ("a.4",), ("a.5",), {"dim": [0], "x": 0.25}, 0)])  # value
    out.append([*base[:2], ("sum", ("a.4",), ("a.5",), {"dim": [0], "x": 1}, 0)])  # an int
    # attrs of every kind the wire takes, including values JSON writes alike (a DType and its
    # name, a numpy scalar and its Python number, a list and a tuple) and ones it does not
    for value in (True, 1, False, 0, np.int64(1), np.bool_(True), np.float64(1.5), 1.5, "1.5",
                  gs.float32, "float32", None, [1, 2], (1, 2), [1.0, 2], ["a"], "a", [],
                  np.float32(0.25), -0.0, 0.0, np.float64(-0.0), float("nan"), [True]):
        out.append([*base[:2], ("sum", ("a.4",), ("a.5",), {"dim": [0], "v": value}, 0)])
    out.append([*base[:2], ("sum", ("a.4",), ("a.5",), {"v": 1, "dim": [0]}, 0)])  # order
    # ops of one or two inputs and no output (in place) against ones with an output
    for last in [("sub_", ("a.4", "a.1"), (), None, 2), ("sub_", ("a.4", "a.2"), (), None, 2),
                 ("sub_", ("a.4", 1.5), (), {"alpha": 0.5}, 2), ("sub_", ("a.4",), (), None, 2),
                 ("sub_", ("a.4", "a.1"), ("a.5",), None, 2), ("sub_", ("a.4",), ("a.5",), None, 2),
                 ("sub_", ("a.4", "a.1", "a.2"), (), None, 2), ("sub_", (), ("a.5",), None, 2)]:
        out.append([*base[:2], last])
    renamed = [(n, tuple(x.replace("a.", "b.") if isinstance(x, str) else x for x in args),
                tuple(o.replace("a.", "b.") for o in outs), attrs, flags)
               for n, args, outs, attrs, flags in base]
    out.append(renamed)  # other ids, the same template
    return out


def test_running_keys_are_equal_exactly_when_templates_are():
    batches = _variants()
    for a, b in itertools.product(batches, repeat=2):
        key_a, ids_a, values_a = _key(a)
        key_b, _, _ = _key(b)
        template_a, split_ids, split_values = _replay.split(a)
        template_b, _, _ = _replay.split(b)
        assert (key_a == key_b) == (template_a == template_b), (a, b)
        assert ids_a == split_ids and values_a == split_values  # the replay's ids and values


def test_a_batch_is_captured_at_its_second_sighting_and_replayed_after():
    plans = _replay.Plans("p.")
    ops = [["mul", ["a.1", "a.2"], ["a.3"], None, 0]] * 4
    assert plans.pack(ops) == _replay.pack_ops(ops)
    assert plans.pack(ops).startswith(b'[["@capture"')  # the second sighting: captured
    assert plans.pack(ops).startswith(b'[["@replay"')
    plans.enabled = False
    assert plans.pack(ops) == _replay.pack_ops(ops)


def test_a_replay_is_written_as_the_encoder_writes_it():
    """Ids joined as they are where JSON would write them so, else the encoder's bytes."""
    for handle, ids, values in [("ab.1", ["ab.2", "ab.3"], []), ("ab.1", ['a"b', "c"], [0.5]),
                                ("x", ["\u00e9"], []), ("x", [], []), ("h", ["a\\b"], [1.5]),
                                ("h", ["a\x01"], []), ("h", ["a\x7f", "b"], [2.0, -0.0]),
                                ('h"', ["a"], []), ("h", ["a", "b"], [float("nan"), 1e300])]:
        assert _replay.replay_bytes(handle, ids, values) == _replay.pack_ops(
            [[_replay.REPLAY, handle, ids, values]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.bool_])
def test_fetch_frames_are_read_in_place_as_the_parsed_chunks(dtype):
    arr = (np.arange(3 * 1000) % 7).astype(dtype).reshape(3, 1000)
    frames = list(convert.fetch_frames("x", arr, pb.ENCODING_RAW))
    assert all(_wire.split_fetch(f)[1] is not None for f in frames)  # the bytes in place
    got = _wire.Assembler().add_all(frames).done["x"]
    assert got.dtype == arr.dtype and np.array_equal(got, arr)
    # anything else is parsed as it is: values, a missing tensor, chunks built by protobuf
    values = [m.SerializeToString() for m in convert.fetch_chunks("v", arr, pb.ENCODING_VALUES)]
    none = [m.SerializeToString() for m in convert.fetch_chunks("n", None, pb.ENCODING_RAW)]
    plain = [m.SerializeToString() for m in convert.fetch_chunks("p", arr, pb.ENCODING_RAW,
                                                                   chunk_bytes=1000)]
    done = _wire.Assembler().add_all(values + none + plain).done
    assert np.array_equal(done["v"], arr) and done["n"] is None
    assert np.array_equal(done["p"], arr)


def test_a_fetch_message_that_is_not_protobuf_fails_to_parse():
    from google.protobuf.message import DecodeError

    with pytest.raises(DecodeError):
        _wire.split_fetch(b"\x12\xff")


def test_s_tensor_reads_the_array_without_keeping_it(s, ops):
    arr = np.arange(4, dtype=np.float32)
    t = s.tensor(arr)
    arr[:] = -1  # the caller's array changes after the call: the sent bytes do not
    (op,) = ops.of(s)
    assert np.frombuffer(op.data.raw, "<f4").tolist() == [0.0, 1.0, 2.0, 3.0]
    assert t.shape == (4,)


def _forward(x, w):
    return gs.nn.functional.relu(x @ w)  # in the user's forward


class _Block(gs.nn.Module):
    def __init__(self, s):
        super().__init__()
        self.lin = gs.nn.Linear(2, 2, session=s)

    def forward(self, x):
        return self.lin(x).tanh()  # in the user's module


def test_every_recording_path_names_the_users_line(s):
    """The kind skips its own frames and the core's when it looks for the user's line: each
    way into the op sequence still names the line that recorded the op."""
    from gradserve._record import site_text

    lines = {text.split("# ")[-1]: n for n, text in enumerate(
        pathlib.Path(__file__).read_text().splitlines(), 1) if "# " in text}
    block = _Block(s)
    seen = len(s._ops)

    def recorded_at(marker):
        nonlocal seen
        sites = {site_text(site) for site in s._sites[seen:]}
        assert len(s._ops) > seen and sites == {f"{HERE}:{lines[marker]}"}, (marker, sites)
        seen = len(s._ops)

    x = s.ones(2, 2, requires_grad=True)  # a factory
    recorded_at("a factory")
    y = x * 2  # an operator
    recorded_at("an operator")
    z = y.exp().sum(0)  # methods
    recorded_at("methods")
    w = gs.exp(z)  # a module function
    recorded_at("a module function")
    h = _forward(x, y)
    recorded_at("in the user's forward")
    h = block(h)
    recorded_at("in the user's module")
    with gs.no_grad():
        x.add_(1.0)  # in place
    recorded_at("in place")
    with gs.no_grad():
        x += w  # an augmented assignment
    recorded_at("an augmented assignment")
    parts = h.split(1)  # several outputs
    recorded_at("several outputs")
    assert len(parts) == 2


def test_op_batches_pack_as_the_json_encoder_writes_them():
    import json

    from gradserve.v1 import codec

    entries = [["mul", ["a.1", 2, 2.5, True], ["a.2"], None, 0],
               ["sum", ["a.2"], ["a.3"], {"dim": (0, np.int64(1)), "dtype": gs.float32,
                                           "x": {"@": 0}, "name": "é\u2028\"\\"}, 3],
               ["clamp", [float("nan"), float("inf"), -float("inf"), 1e300, -0.0], [], {}, 1]]
    plain = json.JSONEncoder(separators=(",", ":"), default=codec._json_default)
    assert codec.pack_ops(entries) == plain.encode(entries).encode()
    with pytest.raises(gs.InvalidArgumentError, match="not object"):
        codec.pack_ops([{"x": object()}])


def _slots(cls):
    return [n for k in cls.__mro__ for n in getattr(k, "__slots__", ()) if n != "__weakref__"]


def test_an_outputs_proxy_has_the_constructors_state(s):
    """`output_proxy` (a recorded op's output, made without a constructor call) sets every
    slot the constructor does, to the same values; the session holds and releases it alike."""
    from gradserve._tensor import RemoteTensor, output_proxy

    shape = gs.Size((2, 3))
    fast = output_proxy(s, "fast.1", shape, gs.float32, "cpu", (1, 2))
    plain = RemoteTensor(s, "plain.1", shape, gs.float32, "cpu", (1, 2))
    for name in _slots(RemoteTensor):
        a, b = getattr(fast, name), getattr(plain, name)
        if name == "_vc":
            assert type(a) is type(b) and a is not b and a.value == b.value
        elif name == "_held":
            assert type(a) is type(b) and a() is fast and a.tid == "fast.1"
        elif name == "_id":
            assert a == "fast.1"
        else:
            assert a == b, name
    assert fast.shape is shape and s._proxy("fast.1") is fast
    assert type(output_proxy(s, "fast.2", (4,), gs.float32, "cpu", None).shape) is gs.Size
    del fast
    import gc

    gc.collect()
    assert s._proxy("fast.1") is None
    assert "fast.1" in s._released()[1] and s._proxy("fast.1") is None


def test_sites_are_kept_per_instruction_with_the_lines_of_long_scripts(s):
    """Two ops on one line name that line; so do ops deep into a long script (a site is
    found by its instruction; the line is read once per instruction)."""
    from gradserve._record import site_text

    x = s.ones(2)
    seen = len(s._sites)
    y = (x + 1) * 2  # two ops, one line
    line = [n for n, text in enumerate(pathlib.Path(__file__).read_text().splitlines(), 1)
            if text.strip().endswith("# two ops, one line")][0]
    assert [site_text(site) for site in s._sites[seen:]] == [f"{HERE}:{line}"] * 2
    filler = "\n".join(f"v{i} = {i}" for i in range(3000))
    source = f"{filler}\nfor i in range(3):\n    y = y + x\n    y = y * x\n"
    seen = len(s._sites)
    exec(compile(source, "long_script.py", "exec"), {"x": x, "y": y})
    assert [site_text(site) for site in s._sites[seen:]] == [
        "long_script.py:3002", "long_script.py:3003"] * 3


def test_collected_proxies_release_the_ids_the_table_still_gives_them():
    """`Session._released` against the rule it keeps: an id is released
    when this client made it, and the table lets go of it unless a newer proxy took it."""
    import collections
    import types

    from gradserve import _session, _tensor

    class Dummy:
        pass

    def run(entries):
        table, queue, keep = {}, collections.deque(), []
        for cls, tid, newer in entries:
            obj = Dummy()
            held = cls(obj)
            held.tid = tid
            table[tid] = held
            if newer:  # a newer proxy took the id before this one was collected
                keep.append(Dummy())
                table[tid] = _tensor.Held(keep[-1])
                table[tid].tid = tid
            queue.append(held)
            del obj  # collected: its reference is dead, as the queue holds them
        fake = types.SimpleNamespace(_releases=queue, _proxies=table)
        helds, ids = _session.Session._released(fake)
        assert not queue and len(helds) == len(entries)
        return ids, sorted(table)

    held, borrowed = _tensor.Held, _tensor.Borrowed
    assert run([(held, "a", False), (held, "b", False)]) == (["a", "b"], [])
    assert run([(held, "a", False), (borrowed, "b", False)]) == (["a"], [])
    assert run([(held, "a", True), (held, "b", False)]) == (["a", "b"], ["a"])
    assert run([(borrowed, "a", True), (held, "b", False)]) == (["b"], ["a"])
