"""Per-principal authorization: bucket ownership plus IAM-style identity policies.

Decision order (as in AWS IAM, for one account): an explicit Deny in any attached policy wins;
then the bucket owner (the view's ``bucket_owner``, in the view's tenant) and a user with the VMS
``s3_superuser`` flag (any bucket of its tenant) are allowed everything;
then an Allow in an attached policy; otherwise the request is denied.

Supported policy grammar: ``Statement`` (object or list) with ``Effect``, ``Action`` /
``NotAction``, ``Resource`` / ``NotResource`` (strings or lists, ``*`` and ``?`` wildcards, case-
insensitive actions). A statement with a ``Condition`` this evaluator does not understand never
grants (an Allow is skipped) but still denies (a Deny applies): unknown conditions fail safe.
A policy text that is not valid JSON grants nothing.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from vms_mock.s3.directory import AccessKeyRecord, BucketView

log = logging.getLogger(__name__)


@lru_cache(maxsize=1024)
def _glob(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    rx = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(rx + r"\Z", re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def _matches(patterns: Iterable[str], value: str, ignore_case: bool) -> bool:
    return any(_glob(p, ignore_case).match(value) for p in patterns)


@lru_cache(maxsize=512)
def _parse(policy_text: str) -> tuple[dict[str, Any], ...]:
    """Statements of a policy text (parsed once per distinct text)."""
    try:
        doc = json.loads(policy_text)
        statements = doc["Statement"] if isinstance(doc, dict) else None
    except (ValueError, KeyError, TypeError):
        log.warning("ignoring an S3 policy that is not valid IAM JSON")
        return ()
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list):
        return ()
    return tuple(s for s in statements if isinstance(s, dict))


def _statement_applies(stmt: dict[str, Any], action: str, resource: str) -> bool:
    if "Action" in stmt:
        if not _matches(_as_list(stmt["Action"]), action, True):
            return False
    elif "NotAction" in stmt:
        if _matches(_as_list(stmt["NotAction"]), action, True):
            return False
    else:
        return False
    if "Resource" in stmt:
        return _matches(_as_list(stmt["Resource"]), resource, False)
    if "NotResource" in stmt:
        return not _matches(_as_list(stmt["NotResource"]), resource, False)
    return False


def resource_arn(bucket: str | None, key: str | None = None) -> str:
    if bucket is None:
        return "*"
    return f"arn:aws:s3:::{bucket}" if key is None else f"arn:aws:s3:::{bucket}/{key}"


def evaluate(policies: list[str], action: str, resource: str) -> bool | None:
    """True (allowed), False (explicitly denied) or None (no statement applies)."""
    allowed = False
    for text in policies:
        for stmt in _parse(text):
            effect = stmt.get("Effect")
            if not _statement_applies(stmt, action, resource):
                continue
            if effect == "Deny":
                return False
            if effect == "Allow" and "Condition" not in stmt:
                allowed = True
    return True if allowed else None


def is_owner(principal: AccessKeyRecord, view: BucketView) -> bool:
    return (view.bucket_owner is not None and view.bucket_owner == principal.user_name
            and view.tenant_id == principal.tenant_id)


def is_allowed(principal: AccessKeyRecord, policies: list[str], view: BucketView | None,
               action: str, resource: str) -> bool:
    decision = evaluate(policies, action, resource)
    if decision is False:
        return False
    if view is not None and view.tenant_id != principal.tenant_id:
        return False  # identities never cross tenants
    if view is not None and is_owner(principal, view):
        return True
    if principal.s3_superuser:
        return True  # every bucket of its tenant (an explicit Deny above still wins)
    return decision is True
