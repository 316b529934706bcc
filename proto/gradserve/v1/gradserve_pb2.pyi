from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Encoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENCODING_UNSPECIFIED: _ClassVar[Encoding]
    ENCODING_VALUES: _ClassVar[Encoding]
    ENCODING_RAW: _ClassVar[Encoding]
ENCODING_UNSPECIFIED: Encoding
ENCODING_VALUES: Encoding
ENCODING_RAW: Encoding

class CreateSessionRequest(_message.Message):
    __slots__ = ("device",)
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    device: str
    def __init__(self, device: _Optional[str] = ...) -> None: ...

class SessionRef(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class SessionInfo(_message.Message):
    __slots__ = ("session_id", "device", "owner", "tensor_count", "bytes", "idle_seconds", "ttl_seconds", "bytes_by_device", "device_memory_used", "device_memory_pool", "devices", "instance_id", "applied_seq", "epoch")
    class BytesByDeviceEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    TENSOR_COUNT_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    IDLE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    BYTES_BY_DEVICE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_MEMORY_USED_FIELD_NUMBER: _ClassVar[int]
    DEVICE_MEMORY_POOL_FIELD_NUMBER: _ClassVar[int]
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    APPLIED_SEQ_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    device: str
    owner: str
    tensor_count: int
    bytes: int
    idle_seconds: float
    ttl_seconds: float
    bytes_by_device: _containers.ScalarMap[str, int]
    device_memory_used: int
    device_memory_pool: int
    devices: _containers.RepeatedScalarFieldContainer[str]
    instance_id: str
    applied_seq: int
    epoch: int
    def __init__(self, session_id: _Optional[str] = ..., device: _Optional[str] = ..., owner: _Optional[str] = ..., tensor_count: _Optional[int] = ..., bytes: _Optional[int] = ..., idle_seconds: _Optional[float] = ..., ttl_seconds: _Optional[float] = ..., bytes_by_device: _Optional[_Mapping[str, int]] = ..., device_memory_used: _Optional[int] = ..., device_memory_pool: _Optional[int] = ..., devices: _Optional[_Iterable[str]] = ..., instance_id: _Optional[str] = ..., applied_seq: _Optional[int] = ..., epoch: _Optional[int] = ...) -> None: ...

class CloseSessionResponse(_message.Message):
    __slots__ = ("freed_tensors",)
    FREED_TENSORS_FIELD_NUMBER: _ClassVar[int]
    freed_tensors: int
    def __init__(self, freed_tensors: _Optional[int] = ...) -> None: ...

class TensorData(_message.Message):
    __slots__ = ("shape", "dtype", "values", "raw")
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    RAW_FIELD_NUMBER: _ClassVar[int]
    shape: _containers.RepeatedScalarFieldContainer[int]
    dtype: str
    values: _containers.RepeatedScalarFieldContainer[float]
    raw: bytes
    def __init__(self, shape: _Optional[_Iterable[int]] = ..., dtype: _Optional[str] = ..., values: _Optional[_Iterable[float]] = ..., raw: _Optional[bytes] = ...) -> None: ...

class Operand(_message.Message):
    __slots__ = ("tensor", "float", "int", "bool")
    TENSOR_FIELD_NUMBER: _ClassVar[int]
    FLOAT_FIELD_NUMBER: _ClassVar[int]
    INT_FIELD_NUMBER: _ClassVar[int]
    BOOL_FIELD_NUMBER: _ClassVar[int]
    tensor: str
    float: float
    int: int
    bool: bool
    def __init__(self, tensor: _Optional[str] = ..., float: _Optional[float] = ..., int: _Optional[int] = ..., bool: _Optional[bool] = ...) -> None: ...

class OpCall(_message.Message):
    __slots__ = ("op", "inputs", "outputs", "attrs", "no_grad", "inplace", "data", "site")
    OP_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    ATTRS_FIELD_NUMBER: _ClassVar[int]
    NO_GRAD_FIELD_NUMBER: _ClassVar[int]
    INPLACE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    op: str
    inputs: _containers.RepeatedCompositeFieldContainer[Operand]
    outputs: _containers.RepeatedScalarFieldContainer[str]
    attrs: _struct_pb2.Struct
    no_grad: bool
    inplace: bool
    data: TensorData
    site: str
    def __init__(self, op: _Optional[str] = ..., inputs: _Optional[_Iterable[_Union[Operand, _Mapping]]] = ..., outputs: _Optional[_Iterable[str]] = ..., attrs: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., no_grad: _Optional[bool] = ..., inplace: _Optional[bool] = ..., data: _Optional[_Union[TensorData, _Mapping]] = ..., site: _Optional[str] = ...) -> None: ...

class RunOpsRequest(_message.Message):
    __slots__ = ("session_id", "ops", "release")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    OPS_FIELD_NUMBER: _ClassVar[int]
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    ops: _containers.RepeatedCompositeFieldContainer[OpCall]
    release: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, session_id: _Optional[str] = ..., ops: _Optional[_Iterable[_Union[OpCall, _Mapping]]] = ..., release: _Optional[_Iterable[str]] = ...) -> None: ...

class TensorInfo(_message.Message):
    __slots__ = ("id", "shape", "dtype", "device", "requires_grad", "is_leaf", "grad_fn", "version", "has_grad", "strides")
    ID_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    REQUIRES_GRAD_FIELD_NUMBER: _ClassVar[int]
    IS_LEAF_FIELD_NUMBER: _ClassVar[int]
    GRAD_FN_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    HAS_GRAD_FIELD_NUMBER: _ClassVar[int]
    STRIDES_FIELD_NUMBER: _ClassVar[int]
    id: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    dtype: str
    device: str
    requires_grad: bool
    is_leaf: bool
    grad_fn: str
    version: int
    has_grad: bool
    strides: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, id: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ..., dtype: _Optional[str] = ..., device: _Optional[str] = ..., requires_grad: _Optional[bool] = ..., is_leaf: _Optional[bool] = ..., grad_fn: _Optional[str] = ..., version: _Optional[int] = ..., has_grad: _Optional[bool] = ..., strides: _Optional[_Iterable[int]] = ...) -> None: ...

class RunOpsResponse(_message.Message):
    __slots__ = ("outputs",)
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    outputs: _containers.RepeatedCompositeFieldContainer[TensorInfo]
    def __init__(self, outputs: _Optional[_Iterable[_Union[TensorInfo, _Mapping]]] = ...) -> None: ...

class BackwardRequest(_message.Message):
    __slots__ = ("session_id", "tensors", "grad_tensors", "retain_graph", "create_graph", "inputs")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TENSORS_FIELD_NUMBER: _ClassVar[int]
    GRAD_TENSORS_FIELD_NUMBER: _ClassVar[int]
    RETAIN_GRAPH_FIELD_NUMBER: _ClassVar[int]
    CREATE_GRAPH_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    tensors: _containers.RepeatedScalarFieldContainer[str]
    grad_tensors: _containers.RepeatedScalarFieldContainer[str]
    retain_graph: bool
    create_graph: bool
    inputs: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, session_id: _Optional[str] = ..., tensors: _Optional[_Iterable[str]] = ..., grad_tensors: _Optional[_Iterable[str]] = ..., retain_graph: _Optional[bool] = ..., create_graph: _Optional[bool] = ..., inputs: _Optional[_Iterable[str]] = ...) -> None: ...

class BackwardResponse(_message.Message):
    __slots__ = ("grads_defined",)
    GRADS_DEFINED_FIELD_NUMBER: _ClassVar[int]
    grads_defined: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, grads_defined: _Optional[_Iterable[str]] = ...) -> None: ...

class GradRequest(_message.Message):
    __slots__ = ("session_id", "outputs", "inputs", "grad_outputs", "retain_graph", "create_graph", "allow_unused", "results")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    GRAD_OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    RETAIN_GRAPH_FIELD_NUMBER: _ClassVar[int]
    CREATE_GRAPH_FIELD_NUMBER: _ClassVar[int]
    ALLOW_UNUSED_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    outputs: _containers.RepeatedScalarFieldContainer[str]
    inputs: _containers.RepeatedScalarFieldContainer[str]
    grad_outputs: _containers.RepeatedScalarFieldContainer[str]
    retain_graph: bool
    create_graph: bool
    allow_unused: bool
    results: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, session_id: _Optional[str] = ..., outputs: _Optional[_Iterable[str]] = ..., inputs: _Optional[_Iterable[str]] = ..., grad_outputs: _Optional[_Iterable[str]] = ..., retain_graph: _Optional[bool] = ..., create_graph: _Optional[bool] = ..., allow_unused: _Optional[bool] = ..., results: _Optional[_Iterable[str]] = ...) -> None: ...

class GradResponse(_message.Message):
    __slots__ = ("defined",)
    DEFINED_FIELD_NUMBER: _ClassVar[int]
    defined: _containers.RepeatedScalarFieldContainer[bool]
    def __init__(self, defined: _Optional[_Iterable[bool]] = ...) -> None: ...

class FetchRequest(_message.Message):
    __slots__ = ("session_id", "ids", "grad", "encoding")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    GRAD_FIELD_NUMBER: _ClassVar[int]
    ENCODING_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    grad: bool
    encoding: Encoding
    def __init__(self, session_id: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ..., grad: _Optional[bool] = ..., encoding: _Optional[_Union[Encoding, str]] = ...) -> None: ...

class FetchResponse(_message.Message):
    __slots__ = ("id", "tensor", "offset", "last", "none")
    ID_FIELD_NUMBER: _ClassVar[int]
    TENSOR_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    NONE_FIELD_NUMBER: _ClassVar[int]
    id: str
    tensor: TensorData
    offset: int
    last: bool
    none: bool
    def __init__(self, id: _Optional[str] = ..., tensor: _Optional[_Union[TensorData, _Mapping]] = ..., offset: _Optional[int] = ..., last: _Optional[bool] = ..., none: _Optional[bool] = ...) -> None: ...

class UploadRequest(_message.Message):
    __slots__ = ("session_id", "id", "tensor", "requires_grad", "chunk")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    TENSOR_FIELD_NUMBER: _ClassVar[int]
    REQUIRES_GRAD_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    id: str
    tensor: TensorData
    requires_grad: bool
    chunk: bytes
    def __init__(self, session_id: _Optional[str] = ..., id: _Optional[str] = ..., tensor: _Optional[_Union[TensorData, _Mapping]] = ..., requires_grad: _Optional[bool] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class UploadResponse(_message.Message):
    __slots__ = ("info",)
    INFO_FIELD_NUMBER: _ClassVar[int]
    info: TensorInfo
    def __init__(self, info: _Optional[_Union[TensorInfo, _Mapping]] = ...) -> None: ...

class ReleaseRequest(_message.Message):
    __slots__ = ("session_id", "ids")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, session_id: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ...) -> None: ...

class ReleaseResponse(_message.Message):
    __slots__ = ("released",)
    RELEASED_FIELD_NUMBER: _ClassVar[int]
    released: int
    def __init__(self, released: _Optional[int] = ...) -> None: ...

class ListTensorsResponse(_message.Message):
    __slots__ = ("tensors",)
    TENSORS_FIELD_NUMBER: _ClassVar[int]
    tensors: _containers.RepeatedCompositeFieldContainer[TensorInfo]
    def __init__(self, tensors: _Optional[_Iterable[_Union[TensorInfo, _Mapping]]] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("code", "message", "kind", "op_index", "op", "site", "instance_id", "reason")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    OP_INDEX_FIELD_NUMBER: _ClassVar[int]
    OP_FIELD_NUMBER: _ClassVar[int]
    SITE_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    kind: str
    op_index: int
    op: str
    site: str
    instance_id: str
    reason: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ..., kind: _Optional[str] = ..., op_index: _Optional[int] = ..., op: _Optional[str] = ..., site: _Optional[str] = ..., instance_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class PipelineRequest(_message.Message):
    __slots__ = ("session_id", "seq", "ops", "release", "op_batch", "op_data", "backward", "grad", "fetch", "list", "callback_result")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    OPS_FIELD_NUMBER: _ClassVar[int]
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    OP_BATCH_FIELD_NUMBER: _ClassVar[int]
    OP_DATA_FIELD_NUMBER: _ClassVar[int]
    BACKWARD_FIELD_NUMBER: _ClassVar[int]
    GRAD_FIELD_NUMBER: _ClassVar[int]
    FETCH_FIELD_NUMBER: _ClassVar[int]
    LIST_FIELD_NUMBER: _ClassVar[int]
    CALLBACK_RESULT_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    seq: int
    ops: _containers.RepeatedCompositeFieldContainer[OpCall]
    release: _containers.RepeatedScalarFieldContainer[str]
    op_batch: bytes
    op_data: _containers.RepeatedCompositeFieldContainer[TensorData]
    backward: BackwardRequest
    grad: GradRequest
    fetch: FetchRequest
    list: ListTensorsRequest
    callback_result: CallbackResult
    def __init__(self, session_id: _Optional[str] = ..., seq: _Optional[int] = ..., ops: _Optional[_Iterable[_Union[OpCall, _Mapping]]] = ..., release: _Optional[_Iterable[str]] = ..., op_batch: _Optional[bytes] = ..., op_data: _Optional[_Iterable[_Union[TensorData, _Mapping]]] = ..., backward: _Optional[_Union[BackwardRequest, _Mapping]] = ..., grad: _Optional[_Union[GradRequest, _Mapping]] = ..., fetch: _Optional[_Union[FetchRequest, _Mapping]] = ..., list: _Optional[_Union[ListTensorsRequest, _Mapping]] = ..., callback_result: _Optional[_Union[CallbackResult, _Mapping]] = ...) -> None: ...

class Callback(_message.Message):
    __slots__ = ("key", "kind", "grads", "create_graph")
    KEY_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    GRADS_FIELD_NUMBER: _ClassVar[int]
    CREATE_GRAPH_FIELD_NUMBER: _ClassVar[int]
    key: str
    kind: str
    grads: _containers.RepeatedCompositeFieldContainer[TensorInfo]
    create_graph: bool
    def __init__(self, key: _Optional[str] = ..., kind: _Optional[str] = ..., grads: _Optional[_Iterable[_Union[TensorInfo, _Mapping]]] = ..., create_graph: _Optional[bool] = ...) -> None: ...

class CallbackResult(_message.Message):
    __slots__ = ("key", "results", "error")
    KEY_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    key: str
    results: _containers.RepeatedScalarFieldContainer[str]
    error: str
    def __init__(self, key: _Optional[str] = ..., results: _Optional[_Iterable[str]] = ..., error: _Optional[str] = ...) -> None: ...

class DescribeGraphRequest(_message.Message):
    __slots__ = ("session_id", "id", "names")
    class NamesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    NAMES_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    id: str
    names: _containers.ScalarMap[str, str]
    def __init__(self, session_id: _Optional[str] = ..., id: _Optional[str] = ..., names: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ListTensorsRequest(_message.Message):
    __slots__ = ("ids",)
    IDS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ids: _Optional[_Iterable[str]] = ...) -> None: ...

class PipelineResponse(_message.Message):
    __slots__ = ("seq", "error", "backward", "grad", "fetched", "tensors", "callback")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    BACKWARD_FIELD_NUMBER: _ClassVar[int]
    GRAD_FIELD_NUMBER: _ClassVar[int]
    FETCHED_FIELD_NUMBER: _ClassVar[int]
    TENSORS_FIELD_NUMBER: _ClassVar[int]
    CALLBACK_FIELD_NUMBER: _ClassVar[int]
    seq: int
    error: Error
    backward: BackwardResponse
    grad: GradResponse
    fetched: _containers.RepeatedCompositeFieldContainer[FetchResponse]
    tensors: _containers.RepeatedCompositeFieldContainer[TensorInfo]
    callback: Callback
    def __init__(self, seq: _Optional[int] = ..., error: _Optional[_Union[Error, _Mapping]] = ..., backward: _Optional[_Union[BackwardResponse, _Mapping]] = ..., grad: _Optional[_Union[GradResponse, _Mapping]] = ..., fetched: _Optional[_Iterable[_Union[FetchResponse, _Mapping]]] = ..., tensors: _Optional[_Iterable[_Union[TensorInfo, _Mapping]]] = ..., callback: _Optional[_Union[Callback, _Mapping]] = ...) -> None: ...

class ListOpsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListOpsResponse(_message.Message):
    __slots__ = ("ops",)
    OPS_FIELD_NUMBER: _ClassVar[int]
    ops: _containers.RepeatedCompositeFieldContainer[OpInfo]
    def __init__(self, ops: _Optional[_Iterable[_Union[OpInfo, _Mapping]]] = ...) -> None: ...

class OpInfo(_message.Message):
    __slots__ = ("name", "kind", "min_inputs", "max_inputs", "attrs", "differentiable", "max_outputs")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    MIN_INPUTS_FIELD_NUMBER: _ClassVar[int]
    MAX_INPUTS_FIELD_NUMBER: _ClassVar[int]
    ATTRS_FIELD_NUMBER: _ClassVar[int]
    DIFFERENTIABLE_FIELD_NUMBER: _ClassVar[int]
    MAX_OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    min_inputs: int
    max_inputs: int
    attrs: _containers.RepeatedCompositeFieldContainer[AttrInfo]
    differentiable: bool
    max_outputs: int
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., min_inputs: _Optional[int] = ..., max_inputs: _Optional[int] = ..., attrs: _Optional[_Iterable[_Union[AttrInfo, _Mapping]]] = ..., differentiable: _Optional[bool] = ..., max_outputs: _Optional[int] = ...) -> None: ...

class AttrInfo(_message.Message):
    __slots__ = ("name", "required", "default_json")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_JSON_FIELD_NUMBER: _ClassVar[int]
    name: str
    required: bool
    default_json: str
    def __init__(self, name: _Optional[str] = ..., required: _Optional[bool] = ..., default_json: _Optional[str] = ...) -> None: ...

class RestoreSessionRequest(_message.Message):
    __slots__ = ("session_id", "epoch")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    epoch: int
    def __init__(self, session_id: _Optional[str] = ..., epoch: _Optional[int] = ...) -> None: ...
