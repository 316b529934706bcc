"""How compute slots favour latency: sessions whose requests are heavy (an op at a million
elements or more) run their next request on a compute thread of lower OS priority, so light
sessions keep their latency when the CPU is contended (a light request brings the session
back); a tiny request may run on the caller's thread, on a slot taken as an item's would be."""

from __future__ import annotations

import os
import threading


def test_a_session_with_heavy_ops_runs_its_next_item_at_background_priority():
    """An item with an op that touches HEAVY_ELEMENTS or more makes the session's next item
    run on a thread of lower OS priority; a light item brings it back. Other sessions are
    untouched."""
    from gradserve.engine import Meta
    from gradserve.server._limits import check_elements
    from gradserve.server._scheduler import BACKGROUND_NICE, HEAVY_ELEMENTS, Scheduler

    scheduler = Scheduler(["cpu"], cpu_slots=1)

    def item(elements: int) -> int:
        if elements:
            check_elements("sum", (), (Meta((elements,), None),), None)
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    def run(key: str, elements: int = 0) -> int:
        return scheduler.submit("cpu", key, item, elements).result(10)

    try:
        base = run("light")
        assert run("heavy", HEAVY_ELEMENTS) == base  # not known to be heavy yet
        assert scheduler.heavy("heavy") and not scheduler.heavy("light")
        assert run("heavy") == base + BACKGROUND_NICE  # the light item after it: back
        assert not scheduler.heavy("heavy")
        assert run("heavy") == base and run("light") == base
    finally:
        scheduler.close()


def test_a_tiny_request_runs_inline_only_on_a_free_slot_of_an_idle_session():
    """`try_inline` takes a slot as an item would: never while the session has work queued or
    running, nor when no slot is free; `end_inline` gives it back to whoever waits."""
    from gradserve.server._scheduler import Scheduler

    scheduler = Scheduler(["cpu"], cpu_slots=1)
    gate = threading.Event()
    try:
        assert scheduler.try_inline("cpu", "a")
        blocked = scheduler.submit("cpu", "b", lambda: "b ran")  # waits for the slot
        assert not scheduler.try_inline("cpu", "a")  # a is running (inline)
        assert not scheduler.try_inline("cpu", "c")  # no slot free
        scheduler.end_inline("cpu", "a")
        assert blocked.result(10) == "b ran"
        busy = scheduler.submit("cpu", "a", gate.wait, 10)
        assert not scheduler.try_inline("cpu", "a")  # its own item runs: order first
        gate.set()
        assert busy.result(10) is True
        assert scheduler.try_inline("cpu", "a")
        scheduler.end_inline("cpu", "a")
    finally:
        gate.set()
        scheduler.close()


def test_an_inline_item_runs_under_the_deadline_an_item_gets():
    """An item run on the caller's thread gets an item's compute budget (the caller's own
    deadline when sooner): `check_deadline` raises past it; `end_inline` ends it. An inline
    item that ran ops (`weighed`) sets the session's priority as an item does."""
    import time

    import pytest
    from gradserve.engine import Meta
    from gradserve.server._errors import DeadlineExceededError
    from gradserve.server._limits import check_elements
    from gradserve.server._scheduler import HEAVY_ELEMENTS, Scheduler, check_deadline

    scheduler = Scheduler(["cpu"], cpu_slots=1, budget=60)
    try:
        assert scheduler.try_inline("cpu", "a", timeout=0.01)
        time.sleep(0.02)
        with pytest.raises(DeadlineExceededError, match="the call's deadline"):
            check_deadline()
        check_elements("sum", (), (Meta((HEAVY_ELEMENTS,), None),), None)
        scheduler.end_inline("cpu", "a", weighed=True)
        check_deadline()  # no item runs here any more: no deadline
        assert scheduler.heavy("a")
        assert scheduler.try_inline("cpu", "a")
        scheduler.end_inline("cpu", "a")  # no ops: the priority stays as it was
        assert scheduler.heavy("a")
        assert scheduler.try_inline("cpu", "a")
        scheduler.end_inline("cpu", "a", weighed=True)  # light ops: back
        assert not scheduler.heavy("a")
    finally:
        scheduler.close()


def test_a_short_replay_runs_on_the_event_loop_a_long_one_on_a_compute_thread(monkeypatch):
    """A Pipeline request that is only the replay of a captured step runs on the event loop's
    thread once its last runs were short (under `INLINE_REPLAY_SECONDS`), on a compute
    slot's thread otherwise; both give the same results."""
    import gradserve as gs
    import numpy as np
    from gradserve import _session
    from gradserve.server import _short, create_server
    from gradserve.server._executor import Executor

    monkeypatch.setattr(_session, "MAX_BATCH_DELAY", float("inf"))  # whole steps
    threads = []
    run = Executor.run

    def watched(self, session, request, describe=True):
        threads.append(threading.current_thread().name)
        return run(self, session, request, describe)

    monkeypatch.setattr(Executor, "run", watched)
    server, port = create_server("127.0.0.1:0")
    server.start()
    losses = {}
    short = 1.0  # every run of this step is shorter, however loaded the machine
    try:
        with gs.connect(f"127.0.0.1:{port}") as client:
            for bound in (short, 0.0):
                monkeypatch.setattr(_short, "INLINE_REPLAY_SECONDS", bound)
                with client.session() as s:
                    gs.manual_seed(0)
                    w = s.tensor(np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4),
                                 requires_grad=True)
                    x = s.tensor(np.arange(8, dtype=np.float32).reshape(2, 4))
                    opt = gs.optim.SGD([w], lr=0.1)
                    got = []
                    for _ in range(6):
                        del threads[:]
                        opt.zero_grad()
                        loss = (x @ w.t()).relu().sum()
                        loss.backward()
                        opt.step()
                        got.append(loss.item())
                    assert s._plans.replays >= 3
                    losses[bound] = got
                    # the last step: one request, a replay with its fetch
                    assert len(threads) == 1
                    on_loop = threads[0] == "gradserve-aio"
                    assert on_loop == (bound > 0), threads
    finally:
        server.stop(None)
    assert losses[short] == losses[0.0]


def test_a_request_read_while_its_streams_last_one_computes_queues_behind_it(make_server, wire):
    """Once a client runs ahead (two requests in a row it does not wait for, no `then`), a
    Pipeline request that arrives while the stream's previous request runs on a compute slot
    is read and queued on the session at once, so the slot's thread runs it straight after
    (no turn of the event loop between them); the replies keep their order."""
    import time

    from gradserve.server._executor import Executor

    pb = wire.pb
    server, address = make_server(cpu_workers=1)
    gate, started, threads = threading.Event(), threading.Event(), []
    run = Executor.run

    def gated(self, session, request, describe=True):
        threads.append(threading.current_thread().name)
        if len(threads) == 2:
            started.set()
            assert gate.wait(10)
        return run(self, session, request, describe)

    channel, stub = wire.connect(address)
    Executor.run = gated
    try:
        sid = stub.CreateSession(pb.CreateSessionRequest()).session_id
        send, replies = wire.pipe(stub)
        for seq, tid in ((1, "w"), (2, "x")):
            op = wire.tensor_op(tid, [1, 2], shape=(2,))
            send(pb.PipelineRequest(session_id=sid, seq=seq, ops=[op]))
        assert started.wait(10)
        send(pb.PipelineRequest(session_id=sid, seq=3, fetch=pb.FetchRequest(ids=["x"])))
        queues = server.runtime.scheduler._devices["cpu"].queues
        for _ in range(1000):  # the third is queued while the second still runs
            if queues.get(sid):
                break
            time.sleep(0.01)
        assert queues.get(sid), "the next request was not read while the last one ran"
        gate.set()
        got = [next(replies) for _ in range(3)]
        send(None)
        assert [r.seq for r in got] == [1, 2, 3] and not got[1].HasField("error")
        assert list(got[2].fetched[0].tensor.values) == [1, 2]
        assert threads[1] == threads[2] and threads[1].startswith("gradserve-compute")
    finally:
        gate.set()
        Executor.run = run
        channel.close()


def test_a_queued_item_can_be_withdrawn_until_it_starts():
    """`withdraw` drops an item that has not started (it never runs, its future is
    cancelled), and leaves one that has started to finish."""
    import asyncio

    from gradserve.server._scheduler import Scheduler

    scheduler = Scheduler(["cpu"], cpu_slots=1)
    gate, ran = threading.Event(), []

    async def main():
        loop = asyncio.get_running_loop()
        first = scheduler.submit("cpu", "a", gate.wait, 10, loop=loop)
        second = scheduler.submit("cpu", "a", ran.append, "second", loop=loop)
        while not scheduler.busy():
            await asyncio.sleep(0.001)
        assert not scheduler.withdraw(first)  # running: it goes on
        assert scheduler.withdraw(second) and second.cancelled()
        gate.set()
        assert await first is True
        third = scheduler.submit("cpu", "a", ran.append, "third", loop=loop)
        await third
        assert not scheduler.withdraw(third)

    try:
        asyncio.run(main())
        assert ran == ["third"]
    finally:
        gate.set()
        scheduler.close()


def test_a_sessions_items_run_back_to_back_are_answered_together_others_at_once():
    """A thread that goes on to the same session's next item tells the first one's caller
    only after it (so the woken caller does not fight the item for the GIL); going on to
    another session's item, it tells the caller first. A short item runs at the normal
    priority even after a heavy item of its session."""
    from gradserve.engine import Meta
    from gradserve.server._limits import check_elements
    from gradserve.server._scheduler import HEAVY_ELEMENTS, Scheduler

    scheduler = Scheduler(["cpu"], cpu_slots=1)
    gate, seen = threading.Event(), {}

    def first():
        assert gate.wait(10)
        check_elements("sum", (), (Meta((HEAVY_ELEMENTS,), None),), None)  # heavy

    def second(name, earlier):
        seen[name] = (earlier.done(), os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

    try:
        base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        a1 = scheduler.submit("cpu", "a", first)
        a2 = scheduler.submit("cpu", "a", lambda: second("same", a1), short=True)
        gate.set()
        a2.result(10)
        assert seen["same"] == (False, base)  # answered after it; short: not niced
        gate.clear()
        b1 = scheduler.submit("cpu", "b", first)
        c1 = scheduler.submit("cpu", "c", lambda: second("other", b1))
        gate.set()
        c1.result(10)
        assert seen["other"][0] is True  # another session's turn: b1 was answered first
    finally:
        gate.set()
        scheduler.close()
