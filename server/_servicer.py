"""The gRPC servicer: converts messages (via _convert), asks the runtime, maps errors.

Each method admits the call (UNAVAILABLE while draining), identifies the caller, holds the
named session and runs the work on its device worker. Errors go through the one table in
_status (and are counted in the metrics on their way out, in `_abort` and `_error_value`);
Pipeline returns them as values and keeps the stream open, except when its session moved
to the state dir: then the stream ends, UNAVAILABLE with the error kind SessionMovedError,
after the reply to the last request that ran here.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

import grpc
from google.protobuf import struct_pb2
from gradserve.engine import InvalidArgumentError
from gradserve.engine.seam import describe_graph
from gradserve.v1 import gradserve_pb2 as pb
from gradserve.v1 import gradserve_pb2_grpc as pb_grpc

from . import _convert as convert
from . import _opinfo, _status
from ._callbacks import Channel, answer_results
from ._errors import OpFailure, ResourceExhaustedError, SessionMovedError, UnavailableError
from ._executor import CALLBACK_COMMANDS
from ._requests import BackwardAction, FetchAction, GradAction, ListAction, StepResult
from ._runtime import Runtime

_INLINE_MARGIN = 1 << 20  # room for the rest of a PipelineResponse next to inline tensors
SESSION_ID_HEADER = "x-session-id"  # what session-affinity proxies hash on (docs/WIRE.md)


class GradserveServicer(pb_grpc.GradserveServiceServicer):
    """gradserve.v1.GradserveService over a Runtime.

    Each public method is the RPC of the same name; gradserve.proto documents what it does
    and docs/WIRE.md the rules it follows.
    """

    def __init__(self, runtime: Runtime, max_message_bytes: int) -> None:
        self._rt = runtime
        self._ex = runtime.executor
        self._max_inline = max(0, max_message_bytes - _INLINE_MARGIN)
        self._ops = pb.ListOpsResponse(ops=[convert.op_info(i) for i in _opinfo.describe_all()])

    def _unary(self, context: grpc.ServicerContext, body: Callable[[str], object]):
        try:
            with self._rt.admit():
                return body(self._rt.identify(context.invocation_metadata()))
        except Exception as exc:
            self._abort(context, exc)

    def _error_value(self, exc: BaseException) -> pb.Error:
        """`exc` as the Error a reply carries, counted in the metrics."""
        err = _status.error_value(exc, self._rt.instance)
        cause = exc.cause if isinstance(exc, OpFailure) else exc
        self._rt.metrics.error(_status.status_code(exc).name, err.kind,
                               getattr(cause, "limit", None))
        return err

    def _abort(self, context: grpc.ServicerContext, exc: BaseException):
        """End the call with `exc` (see _status.abort), counted in the metrics."""
        _status.abort(context, exc, err=self._error_value(exc))

    def abort_malformed(self, context: grpc.ServicerContext, error: Exception):
        """A request that could not be parsed (see _server): INVALID_ARGUMENT, counted."""
        self._abort(context, error)

    # -- sessions ----------------------------------------------------------------------------
    def CreateSession(self, request, context):
        def body(owner):
            proposed = dict(context.invocation_metadata()).get(SESSION_ID_HEADER)
            session = self._rt.create_session(owner, request.device, proposed)
            return convert.session_info(session, self._rt)

        return self._unary(context, body)

    def DescribeSession(self, request, context):
        def body(owner):
            if not request.session_id:
                raise InvalidArgumentError("session_id is empty")
            session = self._rt.sessions.get(request.session_id, owner)  # no touch: a look only
            return convert.session_info(session, self._rt)

        return self._unary(context, body)

    def RestoreSession(self, request, context):
        def body(owner):
            session = self._rt.restore_session(owner, request.session_id, request.epoch)
            return convert.session_info(session, self._rt)

        return self._unary(context, body)

    def ListOps(self, request, context):
        return self._unary(context, lambda owner: self._ops)

    def CloseSession(self, request, context):
        def body(owner):
            freed = self._rt.close_session(owner, request.session_id)
            return pb.CloseSessionResponse(freed_tensors=freed)

        return self._unary(context, body)

    # -- ops and autograd ----------------------------------------------------------------------
    def RunOps(self, request, context):
        def body(owner):
            sources = convert.op_sources(request)
            with self._rt.session(owner, request.session_id) as s:
                outputs = self._rt.run(s, self._ex.run_ops, sources, list(request.release))
            return pb.RunOpsResponse(outputs=[convert.tensor_info(m) for m in outputs])

        return self._unary(context, body)

    def Backward(self, request, context):
        def body(owner):
            action = convert.backward_action(request)
            with self._rt.session(owner, request.session_id) as s:
                ids = self._rt.run(s, self._ex.backward, action)
            return pb.BackwardResponse(grads_defined=ids)

        return self._unary(context, body)

    def Grad(self, request, context):
        def body(owner):
            action = convert.grad_action(request)
            with self._rt.session(owner, request.session_id) as s:
                defined = self._rt.run(s, self._ex.grad, action)
            return pb.GradResponse(defined=defined)

        return self._unary(context, body)

    def Release(self, request, context):
        def body(owner):
            with self._rt.session(owner, request.session_id) as s:
                released = self._rt.run(s, self._ex.release, list(request.ids))
            return pb.ReleaseResponse(released=released)

        return self._unary(context, body)

    def ListTensors(self, request, context):
        def body(owner):
            with self._rt.session(owner, request.session_id) as s:
                metas = self._rt.run(s, self._ex.list_tensors, ())
            return pb.ListTensorsResponse(tensors=[convert.tensor_info(m) for m in metas])

        return self._unary(context, body)

    def DescribeGraph(self, request, context):
        def body(owner):
            names = dict(request.names)

            def describe(session, tid):
                root = self._ex._tensor(session, tid)
                by_object = {id(t): i for i, t in session.tensors.items()}
                return describe_graph(root, lambda leaf: names.get(
                    by_object.get(id(leaf), ""), by_object.get(id(leaf), "")))

            with self._rt.session(owner, request.session_id) as s:
                graph = self._rt.run(s, describe, request.id)
            reply = struct_pb2.Struct()
            reply.update(graph)
            return reply

        return self._unary(context, body)

    # -- streams -------------------------------------------------------------------------------
    def Fetch(self, request, context):
        # The session stays locked while its chunks stream, so later calls see the values
        # only after this fetch read them; a cancelled stream releases it when it is closed.
        try:
            with self._rt.admit():
                owner = self._rt.identify(context.invocation_metadata())
                enc = convert.encoding(request)
                with self._rt.session(owner, request.session_id) as s:
                    fetched = self._rt.run(s, self._ex.fetch, convert.fetch_action(request))
                    for tid, array in fetched:
                        yield from convert.fetch_frames(tid, array, enc)
        except Exception as exc:
            self._abort(context, exc)

    def Upload(self, request_iterator, context):
        def body(owner):
            first, chunks = convert.upload_messages(request_iterator)
            if first is None:
                raise InvalidArgumentError("empty upload: the first message needs session_id, "
                                           "id and tensor")
            if not first.session_id:
                raise InvalidArgumentError("session_id is empty")
            session = self._rt.sessions.get(first.session_id, owner)  # fail before the bytes
            array = convert.array_from_upload(
                first, chunks, lambda n: self._ex.check_room(session, n))
            with self._rt.session(owner, first.session_id) as s:
                meta = self._rt.run(s, self._ex.bind_host_array, first.id, array,
                                    first.requires_grad)
            return pb.UploadResponse(info=convert.tensor_info(meta))

        return self._unary(context, body)

    def Pipeline(self, request_iterator, context):
        try:
            owner = self._rt.identify(context.invocation_metadata())
        except Exception as exc:
            self._abort(context, exc)
        end = None
        requests = iter(request_iterator)
        try:
            for request in requests:
                if self._may_call_back(owner, request):
                    response, end = yield from self._calling_back(owner, request, requests)
                else:
                    response, end = self._pipeline_step(owner, request)
                if response is not None:
                    yield response
                if end is not None:  # draining, or the session moved: the client moves on
                    break
        except InvalidArgumentError as exc:  # a message that did not parse has no seq to answer
            # without its traceback: that holds this frame, which would hold it (a cycle that
            # only the cyclic collector frees, late in a server that runs it rarely)
            end = exc.with_traceback(None)
        if end is not None:
            self._abort(context, end)

    def _may_call_back(self, owner: str, req: pb.PipelineRequest) -> bool:
        """A backward or grad of a session whose client registered hooks or Functions."""
        if req.WhichOneof("then") not in ("backward", "grad"):
            return False
        if any(name.encode() in req.op_batch for name in CALLBACK_COMMANDS) or any(
                call.op in CALLBACK_COMMANDS for call in req.ops):
            return True  # registered by this very request (a false match costs a thread)
        try:
            return self._rt.sessions.get(req.session_id, owner).calls_back
        except Exception:
            return False  # the ordinary path reports it

    def _calling_back(self, owner: str, req: pb.PipelineRequest, requests):
        """Run `req` on another thread while this generator yields what it sends: callbacks,
        the answers to requests the client sends meanwhile, then req's own answer (see
        _callbacks). Returns what `_pipeline_step` does: req's answer and how the stream ends."""
        outbox: queue.SimpleQueue = queue.SimpleQueue()
        channel = Channel(requests, outbox, req.seq, self._nested)

        def work() -> None:
            try:
                outbox.put(("done", self._pipeline_step(owner, req, channel)))
            except BaseException as exc:  # noqa: BLE001  (the stream must get its answer)
                response = pb.PipelineResponse(seq=req.seq)
                response.error.CopyFrom(self._error_value(exc))
                outbox.put(("done", (response, None)))

        threading.Thread(target=work, name="gradserve-calls-back", daemon=True).start()
        while True:
            item = outbox.get()
            if isinstance(item, tuple):
                return item[1]
            yield item

    def _nested(self, session, req: pb.PipelineRequest):
        """A request that arrived while a backward waits for a callback: run it in place (the
        session's lock is held and this is its worker). Its response, and the tensors its
        callback_result names."""
        response = pb.PipelineResponse(seq=req.seq)
        results = []
        try:
            answer = req.WhichOneof("then") == "callback_result"
            action = None if answer else self._then(req)
            result = self._ex.step(session, convert.op_sources(req), list(req.release), action,
                                   False)
            session.applied_seq = max(session.applied_seq, req.seq)
            if result.error is None and answer:
                results = answer_results(session, req.callback_result)
            if result.error is not None:
                self._rt.note_error(session, result.error)
            self._fill(response, req, action, result)
        except Exception as exc:
            response.error.CopyFrom(self._error_value(exc))
        return response, results

    def _pipeline_step(self, owner: str, req: pb.PipelineRequest,
                       channel: Channel | None = None):
        """(the reply, or None when the request did not run; the error to end the stream
        with, or None)."""
        response = pb.PipelineResponse(seq=req.seq)
        moved = None
        try:
            with self._rt.admit():
                sources = convert.op_sources(req)
                action = self._then(req)
                with self._rt.session(owner, req.session_id) as s:
                    # outputs are not echoed (the client knows them): describe=False
                    s.channel = channel
                    try:
                        result = self._rt.run(s, self._ex.step, sources, list(req.release),
                                              action, False)
                    finally:
                        s.channel = None
                    s.applied_seq = max(s.applied_seq, req.seq)
                    if result.error is not None:
                        self._rt.note_error(s, result.error)
                    # inside the lock: fetched arrays may be the session's live storage
                    self._fill(response, req, action, result)
                    moved = self._rt.checkpoint(s)
        except SessionMovedError as exc:  # it did not run here: no reply, the client resends
            return None, exc
        except Exception as exc:
            response.error.CopyFrom(self._error_value(exc))
            return response, (exc if isinstance(exc, UnavailableError) else None)
        return response, moved

    @staticmethod
    def _then(req: pb.PipelineRequest):
        kind = req.WhichOneof("then")
        if kind == "backward":
            return convert.backward_action(req.backward)
        if kind == "grad":
            return convert.grad_action(req.grad)
        if kind == "fetch":
            return convert.fetch_action(req.fetch)
        if kind == "list":
            return convert.list_action(req.list)
        if kind == "callback_result":
            raise InvalidArgumentError("callback_result answers a callback, and no backward of "
                                       "this session waits for one")
        return None

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
            response.fetched.extend(convert.fetch_whole(t, a, enc) for t, a in result.result)
        elif isinstance(action, ListAction):
            response.tensors.extend(convert.tensor_info(m) for m in result.result)
