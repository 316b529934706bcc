"""The session's Pipeline stream: requests go out in order, responses come back in order.

There is no reader thread: a caller that waits reads responses off the stream itself (one
reader at a time; other waiters sleep until theirs has been read), so a reply wakes the
thread that waits for it directly. Responses nobody waits for are read on the way to one
that somebody does, or when MAX_IN_FLIGHT of them are outstanding. An error in a request
nobody waited for is kept and raised at the next wait, naming the op and the user's line.

Every request stays kept until its reply is read, so that when the session moves (its server
drained and wrote it to a state dir) the requests the old server did not answer are resent,
in order, on a new stream to the server that restored it (`_resume`). Sequence numbers are
the session's, not the stream's, so the server's `applied_seq` names a request exactly.
"""

from __future__ import annotations

import collections
import itertools
import queue
import threading
from collections.abc import Callable

from . import _wire
from ._errors import ConnectionError, GradserveError, SessionMovedError

MAX_IN_FLIGHT = 64  # requests sent without waiting before a sender blocks (backpressure)


class Pipeline:
    """The bidirectional stream: a queue feeds requests; the threads that need answers read them.

    `seqs` numbers the requests (shared by the session's pipelines); `on_break(error)` is
    asked what a stream that ended without a gradserve answer means, and `restore(error)`
    brings a moved session back and returns its SessionInfo (see `_handoff`); `resend(request)`
    is what of an unanswered request goes to the server that restored it."""

    _PENDING = object()

    def __init__(self, client, session_id: str, on_callback=None, seqs=None,
                 on_break: Callable[[GradserveError], GradserveError] | None = None,
                 restore: Callable[[GradserveError], object] | None = None,
                 resend: Callable[[object], object] | None = None) -> None:
        # A server's backward that reached a hook or custom Function of this client sends a
        # `callback` message and waits: whoever waits here runs `on_callback(callback)` (the
        # Python, then its answer, sent as a new request), outside the stream's lock.
        self._on_callback = on_callback
        self._calls: collections.deque = collections.deque()
        self._client = client
        self._session_id = session_id
        self._seq = seqs if seqs is not None else itertools.count(1)
        self._on_break = on_break or (lambda error: error)
        self._restore = restore
        self._resend = resend or (lambda request: request)
        self._cond = threading.Condition()
        self._sent: dict[int, tuple] = {}  # seq -> (op entries, sites), to name a failing op
        self._unacked: dict[int, object] = {}  # seq -> request whose reply was not read yet
        self._waiting: dict[int, object] = {}  # seq -> response once it arrived
        self._deferred: list[tuple[int, GradserveError]] = []  # errors nobody waited for
        self._broken: GradserveError | None = None
        self.reported = False  # the break was raised to the caller: a new stream may replace it
        self._closing = False
        self._ended = False  # the stream finished after close()
        self._reading = False  # a thread is reading the stream
        self._unanswered = 0  # requests sent without a waiter whose response is still out
        self._streams = 0  # streams opened so far
        self._open()

    def _open(self) -> None:
        """A new stream, fed by a queue of its own (an old stream's feeder may still run)."""
        self._streams += 1
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._stream = self._client._call_stream("Pipeline", self._requests(self._queue),
                                                 session_id=self._session_id)
        self._responses = iter(self._stream)

    @staticmethod
    def _requests(feed: queue.SimpleQueue):
        while True:
            request = feed.get()
            if request is None:
                return
            yield request

    def _pump(self, done) -> None:
        """With `_cond` held: read responses until `done()`, or until the stream is over.

        One thread reads at a time, without the lock; the others wait for it to deliver."""
        while not done() and self._broken is None and not self._ended:
            if self._reading:
                self._cond.wait()
                continue
            self._reading = True
            self._cond.release()
            try:
                self._read_one()
            finally:
                self._cond.acquire()
                self._reading = False
                self._cond.notify_all()

    def _read_one(self) -> None:
        try:
            response = next(self._responses)
        except StopIteration:
            if self._closing:
                with self._cond:
                    self._ended = True
                return
            self._ended_by(ConnectionError("the server closed the session's pipeline stream"))
        except Exception as e:  # the stream is gone: every waiter must hear about it
            if not isinstance(e, GradserveError):
                e = ConnectionError(f"the session's pipeline failed: {type(e).__name__}: {e}")
            self._ended_by(e)
        else:
            self._deliver(response)

    def _ended_by(self, error: GradserveError) -> None:
        """The stream ended with `error`: resume a moved session on a new stream, else fail."""
        if self._closing:
            with self._cond:
                self._ended = True
            return
        if getattr(error, "reason", None) == "unresponsive":  # already asked: nobody is there
            pass
        elif not getattr(error, "answered", True):  # no gradserve server said why: ask one
            error = self._on_break(error)
        if isinstance(error, SessionMovedError) and self._restore is not None:
            try:
                self._resume(self._restore(error))
                return
            except GradserveError as e:
                error = e
        self._fail(error)

    def _fail(self, error: GradserveError) -> None:
        with self._cond:
            if self._broken is None:
                self._broken = error

    def _deliver(self, response) -> None:
        with self._cond:
            if response.HasField("callback"):  # not request seq's answer: a question in it
                self._calls.append(response.callback)
                return
            seq = response.seq
            self._unacked.pop(seq, None)
            ops = self._sent.pop(seq, ())
            err = _wire.error_value(response.error, ops) if response.HasField("error") else None
            if seq in self._waiting:
                self._waiting[seq] = (response, err)
            else:
                if err is not None:
                    self._deferred.append((seq, err))
                self._unanswered -= 1

    def _resume(self, info) -> None:
        """Carry on, on a new stream, with the session the server behind `info` restored:
        requests it already ran (seq <= its applied_seq) count as done; the rest are resent
        in order, ahead of anything sent from now on."""
        with self._cond:
            for seq in sorted(s for s in self._unacked if s <= info.applied_seq):
                self._unacked.pop(seq)
                self._sent.pop(seq, None)
                if seq in self._waiting:  # its reply was lost with the old server
                    self._waiting[seq] = (None, ConnectionError(
                        "the server ran this request, then moved the session before its "
                        "reply arrived; its result is lost (the session lives on)"))
                else:
                    self._unanswered -= 1
            old = self._queue
            self._open()
            for seq in sorted(self._unacked):
                request = self._unacked[seq] = self._resend(self._unacked[seq])
                self._queue.put(request)
            old.put(None)

    @property
    def pending(self) -> bool:
        """Whether requests were sent whose answers have not been read."""
        return bool(self._unanswered or self._waiting)

    def submit(self, request, ops: tuple | None, wait: bool) -> int:
        """Send `request`; must be called under the session lock so seqs go out in order."""
        with self._cond:
            if not wait:  # backpressure: read answers until few enough are outstanding
                self._pump(lambda: self._unanswered < MAX_IN_FLIGHT or self._calls)
            if self._broken is not None:
                self.reported = True
                raise self._broken
            seq = next(self._seq)
            request.seq = seq
            if ops:
                self._sent[seq] = ops
            if wait:
                self._waiting[seq] = self._PENDING
            else:
                self._unanswered += 1
            self._unacked[seq] = request
            self._queue.put(request)  # under the lock: `_resume` may be swapping the queue
        return seq

    def wait(self, seq: int):
        """Block for response `seq`; raise the first error of it or of any earlier request.

        Callbacks that arrive meanwhile are run here; an error in a callback's answer (its ops
        failed on the server) is raised rather than the error it caused in request `seq`."""
        answers: set[int] = set()
        while True:
            with self._cond:
                self._pump(lambda: self._waiting[seq] is not self._PENDING or self._calls)
                call = self._calls.popleft() if self._calls and self._waiting[
                    seq] is self._PENDING else None
                if call is None:
                    result = self._waiting.pop(seq)
                    earlier = [e for s, e in self._deferred if s < seq or s in answers]
                    self._deferred = [(s, e) for s, e in self._deferred
                                      if s > seq and s not in answers]
                    break
            answers.add(self._on_callback(call))
        if earlier:
            raise earlier[0]
        if result is self._PENDING:
            self.reported = True
            raise self._broken or ConnectionError("the session's pipeline was closed")
        response, err = result
        if err is not None:
            raise err
        return response

    def resume_after_move(self) -> None:
        """Another call found the session moved: read this stream to its end (the old server
        ends it once the session is written, after the replies to what it ran), then go on
        with the restored session (or raise why it could not be)."""
        with self._cond:
            stream = self._streams
            self._pump(lambda: self._streams != stream)
            if self._broken is not None:
                self.reported = True
                raise self._broken

    def close(self) -> None:
        """End the stream after what was sent; its answers are read (for up to 5 s) so that
        the server runs all of it, then the call is cancelled if it has not ended."""
        self._closing = True
        with self._cond:
            self._queue.put(None)
        drain = threading.Thread(target=self._drain, name="gradserve-pipe-close", daemon=True)
        drain.start()
        limit = getattr(self._client, "_timeout", None)
        drain.join(timeout=5 if limit is None else min(5, limit))
        if drain.is_alive():
            self._stream.cancel()

    def _drain(self) -> None:
        with self._cond:
            self._pump(lambda: False)
