from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FeatureValue(_message.Message):
    __slots__ = ("number", "text", "missing")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    MISSING_FIELD_NUMBER: _ClassVar[int]
    number: float
    text: str
    missing: bool
    def __init__(self, number: _Optional[float] = ..., text: _Optional[str] = ..., missing: _Optional[bool] = ...) -> None: ...

class RowFeatures(_message.Message):
    __slots__ = ("values",)
    class ValuesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: FeatureValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[FeatureValue, _Mapping]] = ...) -> None: ...
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.MessageMap[str, FeatureValue]
    def __init__(self, values: _Optional[_Mapping[str, FeatureValue]] = ...) -> None: ...

class ScoreRequest(_message.Message):
    __slots__ = ("model", "version", "ids", "features")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    features: _containers.RepeatedCompositeFieldContainer[RowFeatures]
    def __init__(self, model: _Optional[str] = ..., version: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ..., features: _Optional[_Iterable[_Union[RowFeatures, _Mapping]]] = ...) -> None: ...

class IdScore(_message.Message):
    __slots__ = ("id", "values", "error", "fallback", "points", "reasons")
    ID_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    id: str
    values: _containers.RepeatedScalarFieldContainer[float]
    error: str
    fallback: bool
    points: float
    reasons: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., values: _Optional[_Iterable[float]] = ..., error: _Optional[str] = ..., fallback: _Optional[bool] = ..., points: _Optional[float] = ..., reasons: _Optional[_Iterable[str]] = ...) -> None: ...

class ScoreReply(_message.Message):
    __slots__ = ("model", "version", "task", "scores", "fallback_hosts")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_HOSTS_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: str
    task: str
    scores: _containers.RepeatedCompositeFieldContainer[IdScore]
    fallback_hosts: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, model: _Optional[str] = ..., version: _Optional[str] = ..., task: _Optional[str] = ..., scores: _Optional[_Iterable[_Union[IdScore, _Mapping]]] = ..., fallback_hosts: _Optional[_Iterable[str]] = ...) -> None: ...

class PartRequest(_message.Message):
    __slots__ = ("model", "version", "spec_sha256", "ids")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SPEC_SHA256_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    model: str
    version: str
    spec_sha256: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, model: _Optional[str] = ..., version: _Optional[str] = ..., spec_sha256: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ...) -> None: ...

class PartReply(_message.Message):
    __slots__ = ("version", "found", "partial", "outputs", "split_ids", "left")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    FOUND_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    SPLIT_IDS_FIELD_NUMBER: _ClassVar[int]
    LEFT_FIELD_NUMBER: _ClassVar[int]
    version: str
    found: bytes
    partial: bytes
    outputs: int
    split_ids: bytes
    left: bytes
    def __init__(self, version: _Optional[str] = ..., found: _Optional[bytes] = ..., partial: _Optional[bytes] = ..., outputs: _Optional[int] = ..., split_ids: _Optional[bytes] = ..., left: _Optional[bytes] = ...) -> None: ...
