"""gRPC protocol layer for `cosi.v1alpha1` (the COSI v0.2.x sidecar)."""

from __future__ import annotations

from typing import Any

from cosi_driver.errors import InvalidArgument
from cosi_driver.params import check_map, parse_access_mode
from cosi_driver.proto import cosi_v1alpha1_pb2 as pb
from cosi_driver.proto import cosi_v1alpha1_pb2_grpc as pb_grpc
from cosi_driver.provisioner import Provisioner, check_id
from cosi_driver.rpc import guarded

SIGNATURE = pb.S3SignatureVersion.S3V4


class IdentityV1alpha1(pb_grpc.IdentityServicer):
    def __init__(self, driver_name: str) -> None:
        self.driver_name = driver_name

    @guarded("v1alpha1")
    def DriverGetInfo(self, request: pb.DriverGetInfoRequest, context: Any) -> pb.DriverGetInfoResponse:
        return pb.DriverGetInfoResponse(name=self.driver_name)


class ProvisionerV1alpha1(pb_grpc.ProvisionerServicer):
    def __init__(self, provisioner: Provisioner) -> None:
        self.p = provisioner

    @guarded("v1alpha1")
    def DriverCreateBucket(
        self, request: pb.DriverCreateBucketRequest, context: Any
    ) -> pb.DriverCreateBucketResponse:
        info = self.p.create_bucket(request.name, dict(request.parameters), verbatim=True)
        return pb.DriverCreateBucketResponse(
            bucket_id=info.bucket_id,
            bucket_info=pb.Protocol(s3=pb.S3(region=info.region, signature_version=SIGNATURE)),
        )

    @guarded("v1alpha1")
    def DriverDeleteBucket(
        self, request: pb.DriverDeleteBucketRequest, context: Any
    ) -> pb.DriverDeleteBucketResponse:
        self.p.delete_bucket(request.bucket_id, dict(request.delete_context))
        return pb.DriverDeleteBucketResponse()

    @guarded("v1alpha1")
    def DriverGrantBucketAccess(
        self, request: pb.DriverGrantBucketAccessRequest, context: Any
    ) -> pb.DriverGrantBucketAccessResponse:
        check_id("bucket_id", request.bucket_id)
        if request.authentication_type == pb.AuthenticationType.IAM:
            raise InvalidArgument("authentication_type IAM is not supported by this driver; use Key")
        if request.authentication_type not in (
            pb.AuthenticationType.Key,
            pb.AuthenticationType.UnknownAuthenticationType,
        ):
            raise InvalidArgument(f"unknown authentication_type {request.authentication_type}")
        mode = parse_access_mode(dict(request.parameters))
        access = self.p.grant(
            request.name, [(request.bucket_id, mode)], {"version": "v1alpha1", "auth": "Key"}
        )
        bucket = access.buckets[0]
        secrets = {
            "endpoint": bucket.endpoint,
            "region": bucket.region,
            "accessKeyID": access.access_key_id,
            "accessSecretKey": access.secret_access_key,
        }
        return pb.DriverGrantBucketAccessResponse(
            account_id=access.account_id, credentials={"s3": pb.CredentialDetails(secrets=secrets)}
        )

    @guarded("v1alpha1")
    def DriverRevokeBucketAccess(
        self, request: pb.DriverRevokeBucketAccessRequest, context: Any
    ) -> pb.DriverRevokeBucketAccessResponse:
        if request.bucket_id:
            check_id("bucket_id", request.bucket_id)
        check_map("revoke_access_context", dict(request.revoke_access_context))
        self.p.revoke(request.account_id)
        return pb.DriverRevokeBucketAccessResponse()
