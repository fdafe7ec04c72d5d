"""IAM-style identity policies that scope one access principal to its buckets and mode."""

from __future__ import annotations

import json

# Explicit action lists (no wildcards) so the policy means the same on every evaluator.
ACTIONS = {
    "ReadWrite": [
        "s3:ListBucket",
        "s3:ListBucketVersions",
        "s3:ListBucketMultipartUploads",
        "s3:GetBucketLocation",
        "s3:GetObject",
        "s3:GetObjectVersion",
        "s3:PutObject",
        "s3:DeleteObject",
        "s3:DeleteObjectVersion",
        "s3:AbortMultipartUpload",
        "s3:ListMultipartUploadParts",
    ],
    "ReadOnly": [
        "s3:ListBucket",
        "s3:ListBucketVersions",
        "s3:GetBucketLocation",
        "s3:GetObject",
        "s3:GetObjectVersion",
    ],
    "WriteOnly": [
        "s3:PutObject",
        "s3:AbortMultipartUpload",
        "s3:ListMultipartUploadParts",
        "s3:GetBucketLocation",
    ],
}


def policy_document(grants: list[tuple[str, str]]) -> str:
    """JSON text of the identity policy for ``[(bucket, mode), ...]`` (stable for equal input)."""
    statements: list[dict[str, object]] = []
    for bucket, mode in sorted(grants):
        statements.append(
            {
                "Sid": f"cosi-{mode.lower()}-{len(statements)}",
                "Effect": "Allow",
                "Action": ACTIONS[mode],
                "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
            }
        )
    return json.dumps({"Version": "2012-10-17", "Statement": statements}, sort_keys=True)
