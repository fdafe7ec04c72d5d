from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class S3SignatureVersion(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UnknownSignature: _ClassVar[S3SignatureVersion]
    S3V2: _ClassVar[S3SignatureVersion]
    S3V4: _ClassVar[S3SignatureVersion]

class AnonymousBucketAccessMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UnknownBucketAccessMode: _ClassVar[AnonymousBucketAccessMode]
    Private: _ClassVar[AnonymousBucketAccessMode]
    ReadOnly: _ClassVar[AnonymousBucketAccessMode]
    WriteOnly: _ClassVar[AnonymousBucketAccessMode]
    ReadWrite: _ClassVar[AnonymousBucketAccessMode]

class AuthenticationType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UnknownAuthenticationType: _ClassVar[AuthenticationType]
    Key: _ClassVar[AuthenticationType]
    IAM: _ClassVar[AuthenticationType]
UnknownSignature: S3SignatureVersion
S3V2: S3SignatureVersion
S3V4: S3SignatureVersion
UnknownBucketAccessMode: AnonymousBucketAccessMode
Private: AnonymousBucketAccessMode
ReadOnly: AnonymousBucketAccessMode
WriteOnly: AnonymousBucketAccessMode
ReadWrite: AnonymousBucketAccessMode
UnknownAuthenticationType: AuthenticationType
Key: AuthenticationType
IAM: AuthenticationType

class S3(_message.Message):
    __slots__ = ("region", "signature_version")
    REGION_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_VERSION_FIELD_NUMBER: _ClassVar[int]
    region: str
    signature_version: S3SignatureVersion
    def __init__(self, region: _Optional[str] = ..., signature_version: _Optional[_Union[S3SignatureVersion, str]] = ...) -> None: ...

class AzureBlob(_message.Message):
    __slots__ = ("storage_account",)
    STORAGE_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    storage_account: str
    def __init__(self, storage_account: _Optional[str] = ...) -> None: ...

class GCS(_message.Message):
    __slots__ = ("private_key_name", "project_id", "service_account")
    PRIVATE_KEY_NAME_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    SERVICE_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    private_key_name: str
    project_id: str
    service_account: str
    def __init__(self, private_key_name: _Optional[str] = ..., project_id: _Optional[str] = ..., service_account: _Optional[str] = ...) -> None: ...

class Protocol(_message.Message):
    __slots__ = ("s3", "azureBlob", "gcs")
    S3_FIELD_NUMBER: _ClassVar[int]
    AZUREBLOB_FIELD_NUMBER: _ClassVar[int]
    GCS_FIELD_NUMBER: _ClassVar[int]
    s3: S3
    azureBlob: AzureBlob
    gcs: GCS
    def __init__(self, s3: _Optional[_Union[S3, _Mapping]] = ..., azureBlob: _Optional[_Union[AzureBlob, _Mapping]] = ..., gcs: _Optional[_Union[GCS, _Mapping]] = ...) -> None: ...

class CredentialDetails(_message.Message):
    __slots__ = ("secrets",)
    class SecretsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SECRETS_FIELD_NUMBER: _ClassVar[int]
    secrets: _containers.ScalarMap[str, str]
    def __init__(self, secrets: _Optional[_Mapping[str, str]] = ...) -> None: ...

class DriverGetInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DriverGetInfoResponse(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DriverCreateBucketRequest(_message.Message):
    __slots__ = ("name", "parameters")
    class ParametersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    name: str
    parameters: _containers.ScalarMap[str, str]
    def __init__(self, name: _Optional[str] = ..., parameters: _Optional[_Mapping[str, str]] = ...) -> None: ...

class DriverCreateBucketResponse(_message.Message):
    __slots__ = ("bucket_id", "bucket_info")
    BUCKET_ID_FIELD_NUMBER: _ClassVar[int]
    BUCKET_INFO_FIELD_NUMBER: _ClassVar[int]
    bucket_id: str
    bucket_info: Protocol
    def __init__(self, bucket_id: _Optional[str] = ..., bucket_info: _Optional[_Union[Protocol, _Mapping]] = ...) -> None: ...

class DriverDeleteBucketRequest(_message.Message):
    __slots__ = ("bucket_id", "delete_context")
    class DeleteContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    BUCKET_ID_FIELD_NUMBER: _ClassVar[int]
    DELETE_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    bucket_id: str
    delete_context: _containers.ScalarMap[str, str]
    def __init__(self, bucket_id: _Optional[str] = ..., delete_context: _Optional[_Mapping[str, str]] = ...) -> None: ...

class DriverDeleteBucketResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DriverGrantBucketAccessRequest(_message.Message):
    __slots__ = ("bucket_id", "name", "authentication_type", "parameters")
    class ParametersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    BUCKET_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    AUTHENTICATION_TYPE_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    bucket_id: str
    name: str
    authentication_type: AuthenticationType
    parameters: _containers.ScalarMap[str, str]
    def __init__(self, bucket_id: _Optional[str] = ..., name: _Optional[str] = ..., authentication_type: _Optional[_Union[AuthenticationType, str]] = ..., parameters: _Optional[_Mapping[str, str]] = ...) -> None: ...

class DriverGrantBucketAccessResponse(_message.Message):
    __slots__ = ("account_id", "credentials")
    class CredentialsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: CredentialDetails
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[CredentialDetails, _Mapping]] = ...) -> None: ...
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    CREDENTIALS_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    credentials: _containers.MessageMap[str, CredentialDetails]
    def __init__(self, account_id: _Optional[str] = ..., credentials: _Optional[_Mapping[str, CredentialDetails]] = ...) -> None: ...

class DriverRevokeBucketAccessRequest(_message.Message):
    __slots__ = ("bucket_id", "account_id", "revoke_access_context")
    class RevokeAccessContextEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    BUCKET_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    REVOKE_ACCESS_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    bucket_id: str
    account_id: str
    revoke_access_context: _containers.ScalarMap[str, str]
    def __init__(self, bucket_id: _Optional[str] = ..., account_id: _Optional[str] = ..., revoke_access_context: _Optional[_Mapping[str, str]] = ...) -> None: ...

class DriverRevokeBucketAccessResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
