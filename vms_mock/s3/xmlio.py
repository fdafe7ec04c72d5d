"""XML in and out: request bodies parsed defensively, responses built as S3 writes them."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from urllib.parse import quote
from xml.sax.saxutils import escape

from vms_mock.s3.errors import S3Error

NS = "http://s3.amazonaws.com/doc/2006-03-01/"
HEADER = '<?xml version="1.0" encoding="UTF-8"?>\n'
MAX_XML_BODY = 1 << 20


def iso8601(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int((t % 1) * 1000):03d}Z"


def http_date(t: float) -> str:
    return time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(t))


def el(name: str, value: object) -> str:
    return f"<{name}>{escape(str(value))}</{name}>"


def doc(root: str, inner: str) -> bytes:
    return f'{HEADER}<{root} xmlns="{NS}">{inner}</{root}>'.encode()


def encode_key(key: str, url: bool) -> str:
    return quote(key, safe="/") if url else key


def parse(body: bytes) -> ET.Element:
    """Parse a request body; any DTD or entity is refused (no expansion attacks)."""
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        raise S3Error("MalformedXML")
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        raise S3Error("MalformedXML") from None
    for node in root.iter():
        if isinstance(node.tag, str) and "}" in node.tag:
            node.tag = node.tag.split("}", 1)[1]
    return root


def text(node: ET.Element, name: str) -> str | None:
    child = node.find(name)
    return None if child is None else (child.text or "")
