"""Structured logging shared by every kubevast process.

One JSON object per line (or a short human form with ``--log-format=text``), with secrets
redacted before anything is formatted: a key that names a secret never reaches a log line,
whatever logger or library produced the record.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from collections.abc import Mapping
from typing import Any

REDACTED = "***"

# Keys whose values are secrets wherever they appear (dicts, kwargs, query strings, headers).
_SECRET_KEY = re.compile(
    r"(pass(word)?|secret|token|authorization|api[_-]?key|access[_-]?secret|secret[_-]?key"
    r"|credential|private[_-]?key|refresh|access$|x-amz-signature|signature)",
    re.IGNORECASE,
)
# `key=value` / `"key": "value"` forms inside free text.
_INLINE = re.compile(
    r"""(?P<k>["']?(?:password|secret[_-]?key|secret_access_key|secretAccessKey|accessSecretKey|"""
    r"""access_secret_key|refresh|token|api[_-]?token)["']?\s*[:=]\s*)(?P<q>["']?)(?P<v>[^"',\s}]+)""",
    re.IGNORECASE,
)
_BEARER = re.compile(r"\b(Bearer|Api-Token)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE)


def is_secret_key(key: str) -> bool:
    return bool(_SECRET_KEY.search(key))


def redact(value: Any, _depth: int = 0) -> Any:
    """Return a copy of ``value`` with every secret-named field replaced by ``***``."""
    if _depth > 8:
        return value
    if isinstance(value, Mapping):
        return {
            k: (REDACTED if isinstance(k, str) and is_secret_key(k) and v not in (None, "") else
                redact(v, _depth + 1))
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return type(value)(redact(v, _depth + 1) for v in value)
    if isinstance(value, str):
        return redact_text(value)
    return value


def redact_text(text: str) -> str:
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    return _INLINE.sub(lambda m: f"{m.group('k')}{m.group('q')}{REDACTED}", text)


_STD_ATTRS = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STD_ATTRS and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact_text(record.getMessage()),
        }
        doc.update(redact(_extras(record)))
        if record.exc_info:
            doc["exc"] = redact_text(self.formatException(record.exc_info))
        return json.dumps(doc, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = redact(_extras(record))
        tail = " ".join(f"{k}={v}" for k, v in extras.items())
        line = f"{record.levelname[0]} {record.name}: {redact_text(record.getMessage())}"
        if tail:
            line += f" [{tail}]"
        if record.exc_info:
            line += "\n" + redact_text(self.formatException(record.exc_info))
        return line


def setup_logging(level: str = "info", fmt: str = "json", stream: Any = None) -> None:
    """Configure the root logger once per process (idempotent)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # uvicorn/grpc/urllib3 are chatty at INFO; their access lines are replaced by our own.
    for noisy in ("uvicorn.access", "urllib3", "kubernetes.client.rest"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def add_logging_args(parser: Any) -> None:
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                        help="minimum level of log lines (default: info)")
    parser.add_argument("--log-format", default="json", choices=["json", "text"],
                        help="json lines for machines (default) or short text for people")
