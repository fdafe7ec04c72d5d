"""Fault injection for reliability tests: latency, error responses, forced token expiry.

SPEC syntax (``--fault SPEC``, repeatable; the admin endpoint takes the same fields as JSON):

    KEY=VALUE[,KEY=VALUE...][,path=REGEX]

    path=REGEX      regular expression searched in the request path (default: every API path).
                    Must come last: it takes the rest of the SPEC, so the regex may hold commas.
    method=M[|M]    only these HTTP methods (e.g. POST|DELETE); default all
    latency=D       delay before answering: 250ms, 1.5s or plain seconds
    error=STATUS    answer STATUS (e.g. 503) with {"detail": ...} instead of serving the call
    expire=1        answer 403 "Token is invalid or expired" to Bearer-authenticated calls
    rate=P          probability 0..1 that a matching call is affected (default 1)
    times=N         affect only the first N matching calls, then the rule is spent

Examples: ``error=503,rate=0.3,path=^/api/v\\d/volumes/`` ; ``latency=200ms`` ;
``expire=1,times=1,method=GET,path=/views/``.
"""

from __future__ import annotations

import random
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class FaultRule(BaseModel):
    """One fault rule (also the admin endpoint's request body)."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(".*", max_length=1000, description="regex searched in the request path")
    method: list[str] | None = Field(None, description="HTTP methods; null = all")
    latency: float = Field(0.0, ge=0, le=600, description="seconds of delay")
    error: int | None = Field(None, ge=400, le=599, description="status code to answer")
    expire: bool = Field(False, description="answer 403 Token is invalid or expired to Bearer calls")
    rate: float = Field(1.0, ge=0, le=1)
    times: int | None = Field(None, ge=1, le=1_000_000)

    @field_validator("path")
    @classmethod
    def _regex(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regular expression: {exc}") from None
        return value

    @field_validator("method")
    @classmethod
    def _methods(cls, value: list[str] | None) -> list[str] | None:
        return [m.upper() for m in value] if value else None


def parse_duration(text: str) -> float:
    text = text.strip().lower()
    if text.endswith("ms"):
        return float(text[:-2]) / 1000
    if text.endswith("s"):
        return float(text[:-1])
    return float(text)


def parse_spec(spec: str) -> FaultRule:
    """Parse the SPEC syntax above; raises ValueError naming the bad key."""
    fields: dict[str, Any] = {}
    rest = spec.strip()
    while rest:
        key, sep, tail = rest.partition("=")
        key = key.strip().lower()
        if not sep:
            raise ValueError(f"fault spec item {key!r} is not KEY=VALUE")
        if key == "path":
            fields["path"] = tail
            break
        value, _, rest = tail.partition(",")
        try:
            if key == "method":
                fields["method"] = [m for m in value.split("|") if m]
            elif key == "latency":
                fields["latency"] = parse_duration(value)
            elif key == "error":
                fields["error"] = int(value)
            elif key == "expire":
                fields["expire"] = value.strip().lower() in ("1", "true", "yes")
            elif key == "rate":
                fields["rate"] = float(value)
            elif key == "times":
                fields["times"] = int(value)
            else:
                raise ValueError(f"unknown fault key {key!r}")
        except ValueError as exc:
            raise ValueError(f"fault spec {key}={value!r}: {exc}") from None
    return FaultRule(**fields)


@dataclass
class _Active:
    rule: FaultRule
    regex: re.Pattern[str]
    id: int
    hits: int = 0


@dataclass
class Decision:
    latency: float = 0.0
    error: int | None = None
    expire: bool = False
    rules: list[int] = field(default_factory=list)


class Faults:
    """The active rules; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[_Active] = []
        self._next = 1
        self._rng = random.Random()

    def add(self, rule: FaultRule) -> int:
        with self._lock:
            rid = self._next
            self._next += 1
            self._rules.append(_Active(rule, re.compile(rule.path), rid))
            return rid

    def remove(self, rule_id: int) -> bool:
        with self._lock:
            before = len(self._rules)
            self._rules = [r for r in self._rules if r.id != rule_id]
            return len(self._rules) != before

    def clear(self) -> None:
        with self._lock:
            self._rules = []

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [{"id": r.id, "hits": r.hits, **r.rule.model_dump()} for r in self._rules]

    def decide(self, method: str, path: str) -> Decision | None:
        if not self._rules:  # fast path, no lock
            return None
        out = Decision()
        with self._lock:
            for r in self._rules:
                rule = r.rule
                if rule.method and method not in rule.method:
                    continue
                if not r.regex.search(path):
                    continue
                if rule.times is not None and r.hits >= rule.times:
                    continue
                if rule.rate < 1 and self._rng.random() >= rule.rate:
                    continue
                r.hits += 1
                out.rules.append(r.id)
                out.latency += rule.latency
                if rule.error is not None and out.error is None:
                    out.error = rule.error
                out.expire = out.expire or rule.expire
        return out if out.rules else None
