"""gRPC protocol layer for `sigs.k8s.io.cosi.v1alpha2` (upstream main, pinned in the proto)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cosi_driver.errors import InvalidArgument
from cosi_driver.params import check_access_params
from cosi_driver.proto import cosi_v1alpha2_pb2 as pb
from cosi_driver.proto import cosi_v1alpha2_pb2_grpc as pb_grpc
from cosi_driver.provisioner import BucketInfo, Provisioner
from cosi_driver.rpc import guarded

S3 = pb.ObjectProtocol.Type.S3
MODES = {
    pb.AccessMode.Mode.READ_WRITE: "ReadWrite",
    pb.AccessMode.Mode.READ_ONLY: "ReadOnly",
    pb.AccessMode.Mode.WRITE_ONLY: "WriteOnly",
}
STYLES = {"path": pb.S3AddressingStyle.Style.PATH, "virtual": pb.S3AddressingStyle.Style.VIRTUAL}


def _protocols(protocols: Iterable[pb.ObjectProtocol]) -> None:
    for proto in protocols:
        if proto.type != S3:
            name = (
                pb.ObjectProtocol.Type.Name(proto.type)
                if proto.type in pb.ObjectProtocol.Type.values()
                else str(proto.type)
            )
            raise InvalidArgument(f"protocol {name} is not supported by this driver (only S3)")


def _s3(info: BucketInfo) -> pb.ObjectProtocolAndBucketInfo:
    return pb.ObjectProtocolAndBucketInfo(
        s3=pb.S3BucketInfo(
            bucket_id=info.bucket_id,
            endpoint=info.endpoint,
            region=info.region,
            addressing_style=pb.S3AddressingStyle(style=STYLES[info.addressing_style]),
        )
    )


class IdentityV1alpha2(pb_grpc.IdentityServicer):
    def __init__(self, driver_name: str) -> None:
        self.driver_name = driver_name

    @guarded("v1alpha2")
    def DriverGetInfo(self, request: pb.DriverGetInfoRequest, context: Any) -> pb.DriverGetInfoResponse:
        return pb.DriverGetInfoResponse(
            name=self.driver_name, supported_protocols=[pb.ObjectProtocol(type=S3)]
        )


class ProvisionerV1alpha2(pb_grpc.ProvisionerServicer):
    def __init__(self, provisioner: Provisioner) -> None:
        self.p = provisioner

    @guarded("v1alpha2")
    def DriverCreateBucket(
        self, request: pb.DriverCreateBucketRequest, context: Any
    ) -> pb.DriverCreateBucketResponse:
        _protocols(request.protocols)
        info = self.p.create_bucket(request.name, dict(request.parameters))
        return pb.DriverCreateBucketResponse(bucket_id=info.bucket_id, protocols=_s3(info))

    @guarded("v1alpha2")
    def DriverGetExistingBucket(
        self, request: pb.DriverGetExistingBucketRequest, context: Any
    ) -> pb.DriverGetExistingBucketResponse:
        _protocols(request.protocols)
        info = self.p.get_existing_bucket(request.existing_bucket_id, dict(request.parameters))
        return pb.DriverGetExistingBucketResponse(bucket_id=info.bucket_id, protocols=_s3(info))

    @guarded("v1alpha2")
    def DriverDeleteBucket(
        self, request: pb.DriverDeleteBucketRequest, context: Any
    ) -> pb.DriverDeleteBucketResponse:
        self.p.delete_bucket(request.bucket_id, dict(request.parameters))
        return pb.DriverDeleteBucketResponse()

    @guarded("v1alpha2")
    def DriverGrantBucketAccess(
        self, request: pb.DriverGrantBucketAccessRequest, context: Any
    ) -> pb.DriverGrantBucketAccessResponse:
        if not request.HasField("protocol"):
            raise InvalidArgument("protocol is required")
        _protocols([request.protocol])
        auth = request.authentication_type.type if request.HasField("authentication_type") else 0
        if auth == pb.AuthenticationType.Type.SERVICE_ACCOUNT:
            raise InvalidArgument(
                "authentication_type SERVICE_ACCOUNT is not supported by this driver; use KEY"
            )
        if auth != pb.AuthenticationType.Type.KEY:
            raise InvalidArgument(f"authentication_type must be KEY (got {auth})")
        check_access_params(dict(request.parameters))
        grants = []
        for i, bucket in enumerate(request.buckets):
            mode = MODES.get(bucket.access_mode.mode) if bucket.HasField("access_mode") else None
            if mode is None:
                raise InvalidArgument(f"buckets[{i}].access_mode must be READ_WRITE, READ_ONLY or WRITE_ONLY")
            grants.append((bucket.bucket_id, mode))
        access = self.p.grant(request.account_name, grants, {"version": "v1alpha2", "auth": "KEY"})
        return pb.DriverGrantBucketAccessResponse(
            account_id=access.account_id,
            buckets=[
                pb.DriverGrantBucketAccessResponse.BucketInfo(bucket_id=b.bucket_id, bucket_info=_s3(b))
                for b in access.buckets
            ],
            credentials=pb.CredentialInfo(
                s3=pb.S3CredentialInfo(
                    access_key_id=access.access_key_id, access_secret_key=access.secret_access_key
                )
            ),
        )

    @guarded("v1alpha2")
    def DriverRevokeBucketAccess(
        self, request: pb.DriverRevokeBucketAccessRequest, context: Any
    ) -> pb.DriverRevokeBucketAccessResponse:
        if request.HasField("protocol"):
            _protocols([request.protocol])
        self.p.revoke(request.account_id)
        return pb.DriverRevokeBucketAccessResponse()
