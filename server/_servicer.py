"""The gRPC servicer (grpc.aio): converts messages (via _convert), asks the runtime, maps errors.

Every method that works on a session lowers its message to a `Request` (`_convert`) and runs
it with `Executor.run`, the one way requests run; nothing here looks inside a request's ops
or the executor.

Every call is authenticated from its metadata before any message is read (each method is
served as a stream, so the handler runs when the call opens, not when its message has
arrived): a call without a valid token costs nothing. Work on a session runs as an item of
its queue on a compute slot (`_scheduler`); the event loop only reads, parses, admits and
writes, so an idle stream, or a call whose message never comes, holds no thread.

Errors go through the one table in _status (and are counted in the metrics on their way out,
in `_abort` and `_error_value`); Pipeline returns them as values and keeps the stream open,
except when its session moved to the state dir: then the stream ends, UNAVAILABLE with the
error kind SessionMovedError, after the reply to the last request that ran here.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time

import grpc
from google.protobuf import struct_pb2
from gradserve.engine import InvalidArgumentError
from gradserve.v1 import gradserve_pb2 as pb
from gradserve.v1.codec import SESSION_ID_HEADER

from . import _convert as convert
from . import _opinfo, _status
from . import _replay as replay
from ._callbacks import Channel, answer_results
from ._errors import (
    OpFailure,
    ResourceExhaustedError,
    SessionMovedError,
    UnavailableError,
    detach,
)
from ._reading import Reader, Started, parse_off_loop
from ._requests import (
    BackwardAction,
    FetchAction,
    GradAction,
    ListAction,
    Request,
    StepResult,
)
from ._runtime import Runtime
from ._short import short as is_short

_INLINE_MARGIN = 1 << 20  # room for the rest of a PipelineResponse next to inline tensors
# requests of one Pipeline stream queued on its session at once (read while earlier ones
# run), and the bytes they may hold before the stream stops reading ahead
_READ_AHEAD = 4
_READ_AHEAD_BYTES = 4 << 20


class GradserveServicer:
    """gradserve.v1.GradserveService over a Runtime.

    Each public method is the RPC of the same name; gradserve.proto documents what it does
    and docs/WIRE.md the rules it follows. `entry(method)` is what the server registers.
    """

    def __init__(self, runtime: Runtime, max_message_bytes: int) -> None:
        self._rt = runtime
        self._ex = runtime.executor
        self._sched = runtime.scheduler
        self._max_inline = max(0, max_message_bytes - _INLINE_MARGIN)
        self._ops = pb.ListOpsResponse(ops=[convert.op_info(i) for i in _opinfo.describe_all()])

    # -- entry points ----------------------------------------------------------------------
    def entry(self, method, request_class):
        """The aio handler of `method` (a proto MethodDescriptor): every one is served as a
        client stream, so the caller is identified from metadata before a message is read."""
        body = getattr(self, method.name)
        if method.client_streaming:
            async def stream(request_iterator, context):
                try:
                    owner = self._rt.identify(context.invocation_metadata())
                    return await body(owner, context)
                except Exception as exc:
                    self._abort(context, exc)

            return stream

        async def unary(request_iterator, context):
            try:
                owner = self._rt.identify(context.invocation_metadata())
                data = await context.read()
                if data is grpc.aio.EOF:
                    raise InvalidArgumentError(f"{method.name} got no request message")
                request = await parse_off_loop(request_class, data)
                with self._rt.admit():
                    return await body(owner, request, context)
            except Exception as exc:
                self._abort(context, exc)

        return unary

    def _error_value(self, exc: BaseException) -> pb.Error:
        """`exc` as the Error a reply carries, counted in the metrics."""
        err = _status.error_value(exc, self._rt.instance)
        cause = exc.cause if isinstance(exc, OpFailure) else exc
        self._rt.metrics.error(_status.status_code(exc).name, err.kind,
                               getattr(cause, "limit", None))
        return err

    def _abort(self, context, exc: BaseException) -> None:
        """End the call with `exc` when the handler returns (see _status.end_call), counted
        in the metrics."""
        err = self._error_value(exc)  # logs an INTERNAL error's traceback
        # then no traceback: one holds this call's frames, which hold it (a cycle that only
        # the cyclic collector frees, late in a server that runs it rarely)
        _status.end_call(context, detach(exc, always=True), err)

    def _submit(self, session, fn, *args, context=None, hold: bool = False,
                short: bool = False):
        """`fn(*args)` as the next item of `session`'s queue; its future (of this loop)."""
        timeout = None if context is None else context.time_remaining()
        return self._sched.submit(session.device, session.id, fn, *args, timeout=timeout,
                                  hold=hold, loop=asyncio.get_running_loop(), short=short)

    async def _compute(self, owner: str, session_id: str, fn, *args, context=None):
        """`fn(session, *args)` on a compute slot, the session held (owner checked, locked)."""
        if not session_id:
            raise InvalidArgumentError("session_id is empty")
        session = self._rt.sessions.get(session_id, owner)

        def work():
            with self._rt.session(owner, session_id) as s:
                return fn(s, *args)

        return await self._submit(session, work, context=context)

    async def _run(self, owner: str, session_id: str, request: Request,
                   context=None) -> StepResult:
        """`request` on its session's queue; its result, or its error raised."""
        result = await self._compute(owner, session_id, self._ex.run, request, context=context)
        result.value()
        return result

    # -- sessions ----------------------------------------------------------------------------
    async def CreateSession(self, owner, request, context):
        proposed = dict(context.invocation_metadata()).get(SESSION_ID_HEADER)
        session = self._rt.create_session(owner, request.device, proposed)
        return convert.session_info(session, self._rt)

    async def DescribeSession(self, owner, request, context):
        if not request.session_id:
            raise InvalidArgumentError("session_id is empty")
        session = self._rt.sessions.get(request.session_id, owner)  # no touch: a look only
        return convert.session_info(session, self._rt)

    async def RestoreSession(self, owner, request, context):
        # reads the state dir: off the event loop
        session = await asyncio.to_thread(self._rt.restore_session, owner, request.session_id,
                                          request.epoch)
        return convert.session_info(session, self._rt)

    async def ListOps(self, owner, request, context):
        return self._ops

    async def CloseSession(self, owner, request, context):
        freed = await self._compute(owner, request.session_id,
                                    lambda s: self._rt.sessions.close(s))
        return pb.CloseSessionResponse(freed_tensors=freed)

    # -- ops and autograd ----------------------------------------------------------------------
    async def RunOps(self, owner, request, context):
        req = convert.run_ops_request(request, self._rt.limits)
        result = await self._run(owner, request.session_id, req, context)
        return pb.RunOpsResponse(outputs=[convert.tensor_info(m) for m in result.outputs])

    async def Backward(self, owner, request, context):
        req = convert.action_request(convert.backward_action(request))
        result = await self._run(owner, request.session_id, req, context)
        return pb.BackwardResponse(grads_defined=result.result)

    async def Grad(self, owner, request, context):
        req = convert.action_request(convert.grad_action(request))
        result = await self._run(owner, request.session_id, req, context)
        return pb.GradResponse(defined=result.result)

    async def Release(self, owner, request, context):
        result = await self._run(owner, request.session_id, convert.release_request(request))
        return pb.ReleaseResponse(released=result.released)

    async def ListTensors(self, owner, request, context):
        req = convert.action_request(ListAction([]))
        result = await self._run(owner, request.session_id, req)
        return pb.ListTensorsResponse(tensors=[convert.tensor_info(m) for m in result.result])

    async def DescribeGraph(self, owner, request, context):
        req = convert.action_request(convert.graph_action(request))

        def describe(session):
            reply = struct_pb2.Struct()
            reply.update(self._ex.run(session, req).value())
            if reply.ByteSize() > self._max_inline:
                raise ResourceExhaustedError(
                    f"this graph's description takes {reply.ByteSize()} bytes, more than a "
                    f"reply may ({self._max_inline}); describe a tensor nearer its leaves",
                    "max_graph_nodes")
            return reply

        return await self._compute(owner, request.session_id, describe, context=context)

    # -- streams -------------------------------------------------------------------------------
    async def Fetch(self, owner, request, context):
        # The session stays busy while its chunks stream (its next item waits), so later
        # calls see the values only after this fetch read them; no slot is held meanwhile.
        enc = convert.encoding(request)
        req = convert.action_request(convert.fetch_action(request))
        if not request.session_id:
            raise InvalidArgumentError("session_id is empty")
        session = self._rt.sessions.get(request.session_id, owner)

        def work():
            with self._rt.session(owner, request.session_id) as s:
                return self._ex.run(s, req).value()

        future = self._submit(session, work, context=context, hold=True)
        try:
            fetched = await future
            for tid, array in fetched:
                for frame in convert.fetch_frames(tid, array, enc):
                    await context.write(frame)
        finally:
            self._sched.release_after(future, session.device, session.id)

    async def Upload(self, owner, context):
        with self._rt.admit():
            data = await context.read()
            if data is grpc.aio.EOF:
                raise InvalidArgumentError("empty upload: the first message needs session_id, "
                                           "id and tensor")
            first = convert.parse_upload(data)
            if not first.session_id:
                raise InvalidArgumentError("session_id is empty")
            session = self._rt.sessions.get(first.session_id, owner)  # fail before the bytes
            # the bytes are received on the event loop: a slow upload holds no slot
            assembly = convert.UploadAssembly(first, lambda n: self._ex.check_room(session, n))
            if not assembly.values:  # the bytes being received count while they arrive
                session.account.track(assembly.buf, "cpu")
            while (data := await context.read()) is not grpc.aio.EOF:
                assembly.add(convert.chunk_bytes(data))
            array = assembly.finish()
            result = await self._run(owner, first.session_id,
                                     convert.upload_request(first, array))
            return pb.UploadResponse(info=convert.tensor_info(result.result))

    async def Pipeline(self, owner, context):
        reader = Reader(context, pb.PipelineRequest)
        # requests handed to a compute slot whose replies are not written yet: the next one
        # is read (and queued behind them) while they run, so the slot's thread goes on to it
        # without a turn of this loop in between, when the client sends them
        # without waiting (a client that runs ahead: it sent two requests in a row that it
        # does not wait for, no `then`). After a request it waited for, the next is read once
        # the one before is answered: read while that computes, it only took the GIL from it
        started = Started(reader, _READ_AHEAD, _READ_AHEAD_BYTES)
        end, withdraw, unwaited = None, True, 0
        try:
            while end is None:
                request = await (started.next(unwaited >= 2) if started else reader.next())
                if isinstance(request, asyncio.Future):  # the first one's answer goes out
                    end = await self._reply(context, *await request)
                    continue
                if request is None:
                    break
                unwaited = 0 if request.WhichOneof("then") else unwaited + 1
                # only these may reach a hook or Function of the client (WIRE.md, Callbacks);
                # which do is known once they run, so each gets a way to call back (and the
                # stream to itself: what ran before is answered first)
                if request.WhichOneof("then") in ("backward", "grad"):
                    while started and end is None:
                        end = await self._reply(context, *await started.pop())
                    if end is not None:  # it came after the stream's end: never run
                        break
                    end = await self._reply(
                        context, *await self._calling_back(owner, request, reader, context))
                    continue
                step = self._begin(owner, request, context)
                if isinstance(step, tuple) and not started:
                    end = await self._reply(context, *step)
                else:
                    started.add(step)
            while started and end is None:  # the client sent its last request
                end = await self._reply(context, *await started.pop())
        except InvalidArgumentError as exc:  # a message that did not parse has no seq to answer
            end, withdraw = exc, False  # those before it run and are answered, as when unread
        finally:
            if reader.pending is not None:
                reader.pending.cancel()
            if withdraw:  # queued, not started: never run (the client sends them again)
                for step in started.futures():
                    self._sched.withdraw(step)
        if started:
            await self._answer_ran(context, started.futures())
        if end is not None:
            self._abort(context, end)

    async def _reply(self, context, response, end):
        """Write a request's reply (when it ran); the error to end the stream with, if any."""
        if response is not None:
            await context.write(response)
        return end  # draining, or the session moved: the client moves on

    @staticmethod
    async def _answer_ran(context, steps) -> None:
        """After the stream's end was decided: the replies of requests read ahead that ran
        anyway (a slot had started them), so the client knows they ran."""
        for step in steps:
            if step.cancelled():
                continue
            try:
                response, end = await step
            except Exception:  # pragma: no cover - _pipeline_step answers errors as values
                continue
            if response is not None and end is None:
                await context.write(response)

    async def _step(self, owner: str, req: pb.PipelineRequest, context, channel=None):
        """One Pipeline request on its session's queue: `_pipeline_step`'s answer."""
        step = self._begin(owner, req, context, channel)
        return step if isinstance(step, tuple) else await step

    def _begin(self, owner: str, req: pb.PipelineRequest, context, channel=None):
        """Start one Pipeline request: `_pipeline_step`'s answer when it ran at once (no
        session, or short enough to run here), else the future of its item on its session's
        queue."""
        try:
            session = self._rt.sessions.get(req.session_id, owner) if req.session_id else None
        except Exception:
            session = None
        if session is None:  # fails at once (no session): no need for a slot
            return self._pipeline_step(owner, req, channel)
        handle = None
        if channel is None and not req.ops and not req.op_data:
            handle = replay.lone_replay(req.op_batch)
        short = channel is None and is_short(session, req, handle, self._rt.draining)
        if short and self._sched.try_inline(session.device, session.id,
                                            context.time_remaining()):
            try:  # as an item would, without the hand-off to a slot's thread and back
                return self._pipeline_step(owner, req, None, handle)
            finally:
                self._sched.end_inline(session.device, session.id, weighed=handle is not None)
        # a short one queued behind its session's work (read ahead) runs at the priority it
        # would have run at here
        return self._submit(session, self._pipeline_step, owner, req, channel, handle,
                            context=context, short=short)

    async def _calling_back(self, owner: str, req: pb.PipelineRequest, reader: Reader,
                            context):
        """Run `req` while writing what it sends: callbacks, the answers to requests the
        client sends meanwhile (read here when the work asks for them), then req's own
        answer (see _callbacks). Returns what `_pipeline_step` does."""
        loop = asyncio.get_running_loop()
        outbox: asyncio.Queue = asyncio.Queue()
        asked: list[concurrent.futures.Future] = []

        def ask(timeout):  # on the compute thread
            wanted: concurrent.futures.Future = concurrent.futures.Future()
            loop.call_soon_threadsafe(outbox.put_nowait, wanted)
            try:
                return wanted.result(timeout)
            except concurrent.futures.TimeoutError:
                if wanted.cancel():
                    raise TimeoutError from None
                return wanted.result()

        def send(response):  # on the compute thread
            loop.call_soon_threadsafe(outbox.put_nowait, response)

        def hand_over(wanted, task):
            if task.cancelled() or wanted.done() or not wanted.set_running_or_notify_cancel():
                return  # nobody waits any more: the request stays for the stream's loop
            reader.pending = None
            exc = task.exception()
            if exc is None:
                wanted.set_result(task.result())
            else:
                wanted.set_exception(exc)

        async def handle(item) -> None:
            if isinstance(item, concurrent.futures.Future):
                asked.append(item)
                task = reader.start()
                task.add_done_callback(lambda t, w=item: hand_over(w, t))
            else:
                await context.write(item)

        channel = Channel(ask, send, req.seq, self._nested, self._rt.callback_timeout,
                          self._sched.client_wait)
        work = asyncio.ensure_future(self._step(owner, req, context, channel))
        getter = None
        try:
            while not work.done():
                getter = asyncio.ensure_future(outbox.get())
                await asyncio.wait({getter, work}, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    await handle(getter.result())
                getter.cancel()
            while not outbox.empty():  # what it sent before it finished, in order
                await handle(outbox.get_nowait())
            return work.result()
        finally:
            if getter is not None:
                getter.cancel()
            for wanted in asked:  # the stream ended under a waiting callback: end its wait
                if not wanted.done() and wanted.set_running_or_notify_cancel():
                    wanted.set_result(None)

    def _nested(self, session, req: pb.PipelineRequest):
        """A request that arrived while a backward waits for a callback: run it in place (the
        session's lock is held and this is its worker). Its response, and the tensors its
        callback_result names."""
        try:
            return self._answer(session, req, convert.pipeline_request(
                req, self._rt.limits, answering=True))
        except Exception as exc:
            response = pb.PipelineResponse(seq=req.seq)
            response.error.CopyFrom(self._error_value(exc))
            return response, []

    def _pipeline_step(self, owner: str, req: pb.PipelineRequest,
                       channel: Channel | None = None, handle: str | None = None):
        """(the reply, or None when the request did not run; the error to end the stream
        with, or None). `handle`: the request is a replay of that captured step alone, whose
        duration is noted (`_short.short` reads it)."""
        try:
            with self._rt.admit():
                started = time.perf_counter()
                request = convert.pipeline_request(req, self._rt.limits)
                with self._rt.session(owner, req.session_id) as s:
                    s.channel = channel
                    try:
                        response, _ = self._answer(s, req, request)
                    finally:
                        s.channel = None
                    if handle is not None:
                        replay.note_seconds(s, handle, time.perf_counter() - started)
                    return response, self._rt.checkpoint(s)
        except SessionMovedError as exc:  # it did not run here: no reply, the client resends
            return None, exc
        except Exception as exc:
            response = pb.PipelineResponse(seq=req.seq)
            response.error.CopyFrom(self._error_value(exc))
            return response, (exc if isinstance(exc, UnavailableError) else None)

    def _answer(self, session, req: pb.PipelineRequest, request: Request):
        """Run one Pipeline request, lowered to `request`, on `session` (held): its reply,
        and the tensors its callback_result names (when it answers a callback)."""
        # outputs are not echoed (the client knows them): describe=False
        result = self._ex.run(session, request, describe=False)
        session.applied_seq = max(session.applied_seq, req.seq)
        results = []
        if result.error is not None:
            self._rt.note_error(session, result.error)
        elif req.WhichOneof("then") == "callback_result":
            results = answer_results(session, req.callback_result)
        response = pb.PipelineResponse(seq=req.seq)
        # inside the lock: fetched arrays may be the session's live storage
        self._fill(response, req, request.then, result)
        return response, results

    def _fill(self, response: pb.PipelineResponse, req: pb.PipelineRequest, action,
              result: StepResult) -> None:
        if result.error is not None:
            response.error.CopyFrom(self._error_value(result.error))
            return
        if isinstance(action, BackwardAction):
            response.backward.grads_defined.extend(result.result)
        elif isinstance(action, GradAction):
            response.grad.defined.extend(result.result)
        elif isinstance(action, FetchAction):
            enc = convert.encoding(req.fetch)
            size = convert.inline_bytes(result.result, enc)
            if size > self._max_inline:
                raise ResourceExhaustedError(
                    f"fetching {size} bytes inline passes the {self._max_inline}-byte reply "
                    "limit of Pipeline; use Fetch, which streams in chunks", "inline_fetch"
                )
            fetched = response.fetched
            for t, a in result.result:
                convert.fill_whole(fetched.add(), t, a, enc)
        elif isinstance(action, ListAction):
            response.tensors.extend(convert.tensor_info(m) for m in result.result)

