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
