"""Reading requests on a grpc.aio call: parsed off the event loop when large, and a stream's
next request read on demand (by the stream's own loop, also while its last request computes,
or for a callback that waits)."""

from __future__ import annotations

import asyncio
import collections

import grpc
from google.protobuf.message import DecodeError
from gradserve.engine import InvalidArgumentError

_PARSE_ON_LOOP = 256 << 10  # bytes: a larger message is parsed off the event loop


def parse(message_class, data: bytes):
    """`data` as a `message_class`; InvalidArgumentError when it does not parse."""
    try:
        return message_class.FromString(data)
    except DecodeError:
        raise InvalidArgumentError(
            f"malformed {message_class.__name__} message ({len(data)} bytes that do not "
            "parse as one)") from None
    except RecursionError:  # pragma: no cover - protobuf's own depth limit comes first
        raise InvalidArgumentError(f"{message_class.__name__} nests too deeply") from None


async def parse_off_loop(message_class, data: bytes):
    """`parse`, on a worker thread when the message is large (a 64 MiB RunOps of OpCalls
    takes the parser a while, and the event loop serves everyone)."""
    if len(data) < _PARSE_ON_LOOP:
        return parse(message_class, data)
    return await asyncio.to_thread(parse, message_class, data)


class Reader:
    """A stream's requests, read one at a time; a read the server started for a callback
    (see `_calling_back`) and nobody took is the next request the stream's loop gets."""

    def __init__(self, context, message_class) -> None:
        self._context, self._class = context, message_class
        self.pending: asyncio.Future | None = None
        self.last_bytes = 0  # the size of the last request read

    async def _read(self):
        data = await self._context.read()
        if data is grpc.aio.EOF:
            return None
        self.last_bytes = len(data)
        return await parse_off_loop(self._class, data)

    def start(self) -> asyncio.Future:
        if self.pending is None:
            self.pending = asyncio.ensure_future(self._read())
        return self.pending

    async def next(self):
        if self.pending is None:  # nobody started one: read it here, without a task (and
            return await self._read()  # the loop's turn a task takes to start)
        task = self.pending
        try:
            return await task
        finally:
            if self.pending is task and task.done():
                self.pending = None


class Started:
    """A stream's requests that were started and are not answered yet, in order (a future of
    each one's answer) with their bytes. While they run the stream reads its next request
    too, as long as fewer than `most` hold under `most_bytes`, so it can queue behind them."""

    def __init__(self, reader: Reader, most: int, most_bytes: int) -> None:
        self._reader, self._most, self._most_bytes = reader, most, most_bytes
        self._steps: collections.deque = collections.deque()
        self._bytes = 0

    def __bool__(self) -> bool:
        return bool(self._steps)

    def add(self, step) -> None:
        """The request read last was started: `step` is its future, or its answer given at
        once (it keeps its place in the order all the same)."""
        if not isinstance(step, asyncio.Future):
            answer, step = step, asyncio.get_running_loop().create_future()
            step.set_result(answer)
        self._steps.append((step, self._reader.last_bytes))
        self._bytes += self._reader.last_bytes

    def pop(self) -> asyncio.Future:
        """The first one's future (its answer goes out next)."""
        step, size = self._steps.popleft()
        self._bytes -= size
        return step

    async def next(self, ahead: bool = True):
        """The first one's future once it is done, or, when the next request arrives first
        and may be read ahead (`ahead`, and within the bounds), that request (None: the
        stream ended)."""
        head = self._steps[0][0]
        if ahead and len(self._steps) < self._most and self._bytes < self._most_bytes:
            read = self._reader.start()
            if not head.done():
                await asyncio.wait((head, read), return_when=asyncio.FIRST_COMPLETED)
            if not head.done():
                return await self._reader.next()
        return self.pop()

    def futures(self) -> list:
        return [step for step, _ in self._steps]
