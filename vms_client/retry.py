"""When a failed request may be sent again, and how long to wait before it.

Pure functions and a small policy object, so the rules are unit-testable without a server:
- an answer was received: retry 500/502/503/504/429 for requests safe to repeat;
- no answer: retry when the server never received the request (connect failure/timeout), or when
  the request is safe to repeat (read timeout, connection dropped mid-way);
- wait ``uniform(0, min(cap, base * 2**attempt))`` ("full jitter"), at least what a
  ``Retry-After`` header asks (capped), and never past the overall deadline.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

import requests
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


def is_idempotent(method: str, marked: bool | None = None) -> bool:
    """Whether repeating ``method`` cannot do harm; ``marked`` overrides (True/False)."""
    if marked is not None:
        return marked
    return method.upper() in IDEMPOTENT_METHODS


def never_reached_server(exc: BaseException) -> bool:
    """True when the request certainly did not reach the server (safe to repeat any method)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(exc, requests.exceptions.SSLError):
        return False
    if isinstance(exc, requests.exceptions.ConnectionError):
        seen: set[int] = set()
        cur: BaseException | None = exc
        while cur is not None and id(cur) not in seen:
            seen.add(id(cur))
            if isinstance(cur, (NewConnectionError, ConnectTimeoutError, ConnectionRefusedError)):
                return True
            reason = getattr(cur, "reason", None)
            if isinstance(reason, BaseException):
                cur = reason
                continue
            args = getattr(cur, "args", ())
            nxt = args[0] if args and isinstance(args[0], BaseException) else None
            cur = nxt or cur.__cause__ or cur.__context__
    return False


def should_retry_exception(exc: BaseException, method: str, marked: bool | None = None) -> bool:
    """Whether a transport failure may be retried."""
    if isinstance(exc, requests.exceptions.SSLError):
        return False  # certificate problems do not heal by waiting
    if never_reached_server(exc):
        return True
    if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
        return is_idempotent(method, marked)
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return is_idempotent(method, marked)
    return False


def should_retry_status(status: int, method: str, marked: bool | None = None) -> bool:
    """Whether an answer with ``status`` may be retried (the server did receive the request)."""
    return status in RETRY_STATUSES and is_idempotent(method, marked)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header in its delta-seconds form (dates are ignored)."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def backoff_delay(attempt: int, base: float, cap: float,
                  rand: Callable[[float, float], float] = random.uniform) -> float:
    """Full-jitter delay before retry number ``attempt`` (0 for the first retry)."""
    ceiling = min(cap, base * (2 ** min(attempt, 62)))
    return rand(0.0, ceiling) if ceiling > 0 else 0.0


@dataclass
class RetryBudget:
    """Attempt and time accounting of one logical call."""

    retries: int
    base: float
    cap: float
    deadline: float  # seconds after ``started``
    started: float
    rand: Callable[[float, float], float] = field(default=random.uniform)
    attempt: int = 0  # retries done so far

    def next_delay(self, now: float, retry_after: float | None = None) -> float | None:
        """Seconds to sleep before the next attempt, or None when the budget is spent."""
        if self.attempt >= self.retries:
            return None
        delay = backoff_delay(self.attempt, self.base, self.cap, self.rand)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.cap))
        remaining = self.started + self.deadline - now
        if remaining <= 0 or delay > remaining:
            return None
        self.attempt += 1
        return delay
