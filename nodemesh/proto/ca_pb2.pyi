from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class CertificateRequest(_message.Message):
    __slots__ = ("csr", "identity", "validity_seconds")
    CSR_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    VALIDITY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    csr: str
    identity: str
    validity_seconds: int
    def __init__(self, csr: _Optional[str] = ..., identity: _Optional[str] = ..., validity_seconds: _Optional[int] = ...) -> None: ...

class BootstrapRequest(_message.Message):
    __slots__ = ("node", "csr", "validity_seconds")
    NODE_FIELD_NUMBER: _ClassVar[int]
    CSR_FIELD_NUMBER: _ClassVar[int]
    VALIDITY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    node: str
    csr: str
    validity_seconds: int
    def __init__(self, node: _Optional[str] = ..., csr: _Optional[str] = ..., validity_seconds: _Optional[int] = ...) -> None: ...

class WorkloadBootstrapRequest(_message.Message):
    __slots__ = ("csr", "validity_seconds")
    CSR_FIELD_NUMBER: _ClassVar[int]
    VALIDITY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    csr: str
    validity_seconds: int
    def __init__(self, csr: _Optional[str] = ..., validity_seconds: _Optional[int] = ...) -> None: ...

class CertificateResponse(_message.Message):
    __slots__ = ("cert_chain", "trust_bundle", "not_after")
    CERT_CHAIN_FIELD_NUMBER: _ClassVar[int]
    TRUST_BUNDLE_FIELD_NUMBER: _ClassVar[int]
    NOT_AFTER_FIELD_NUMBER: _ClassVar[int]
    cert_chain: _containers.RepeatedScalarFieldContainer[str]
    trust_bundle: str
    not_after: int
    def __init__(self, cert_chain: _Optional[_Iterable[str]] = ..., trust_bundle: _Optional[str] = ..., not_after: _Optional[int] = ...) -> None: ...
