"""Strict parsing of ``application/x-www-form-urlencoded`` bodies and Basic auth.

UPS's token endpoints take form bodies. Real clients get small things wrong:
they send JSON, repeat a parameter, or add ``; charset=UTF-8`` to the content
type. The sandbox accepts exactly what a form is (any parameters on the media
type, case-insensitive media type) and refuses the rest with a named reason,
never "first value wins".
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

__all__ = ["MAX_FORM_BYTES", "BasicCredentials", "FormError", "parse_basic", "parse_form"]

MAX_FORM_BYTES = 64 * 1024
"""Token and refresh bodies are a few hundred bytes; anything this large is an error."""

FORM_TYPE = "application/x-www-form-urlencoded"
BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
"""A ``%`` not followed by two hex digits: decoders keep it literally, so ``%zz``
would silently become part of a code or state instead of being refused."""
MAX_FIELDS = 100


class FormError(ValueError):
    """The body is not a usable form; ``reason`` names the catalogue entry."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def parse_form(content_type: str | None, body: bytes,
               content_encoding: str | None = None) -> dict[str, str]:
    """The form's fields, or FormError. Duplicated names are an error.

    Compressed bodies are refused: token requests are tiny, and inflating first
    would let a small gzip body grow unbounded before the size check."""
    if content_encoding and content_encoding.strip().lower() != "identity":
        raise FormError("invalid_body", "compressed body (Content-Encoding)")
    if len(body) > MAX_FORM_BYTES:
        raise FormError("body_too_large", f"body of {len(body)} bytes")
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media != FORM_TYPE:
        raise FormError("unsupported_media_type", f"content type {media or 'missing'!r}")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise FormError("invalid_body", "body is not UTF-8") from None
    fields: dict[str, str] = {}
    if not text:
        return fields
    parts = text.split("&")
    if len(parts) > MAX_FIELDS:
        raise FormError("invalid_body", f"more than {MAX_FIELDS} fields")
    for part in parts:
        name, eq, value = part.partition("=")
        if not eq or not name:
            raise FormError("invalid_body", "body is not a well-formed form")
        try:
            name, value = _decode(name), _decode(value)
        except UnicodeDecodeError:
            raise FormError("invalid_body", "a field is not percent-encoded UTF-8") from None
        if name in fields:
            raise FormError("invalid_request", f"parameter {name!r} given more than once")
        fields[name] = value
    return fields


def _decode(part: str) -> str:
    """Form decoding (``+`` is a space), skipped when there is nothing to decode:
    most fields are plain, and unquoting is the costliest step of a token request."""
    if "%" in part:
        if BAD_ESCAPE.search(part):
            raise FormError("invalid_body", "malformed percent-encoding")
        # unquote_plus(part, errors="strict"), without its regex split into ASCII runs
        return unquote_to_bytes(part.replace("+", " ")).decode("utf-8")
    if "+" in part:
        return part.replace("+", " ")
    return part


@dataclass(frozen=True)
class BasicCredentials:
    client_id: str
    secret: str

    def __repr__(self) -> str:  # never show the secret in a traceback
        return f"BasicCredentials(client_id={self.client_id!r}, secret=<redacted>)"


def parse_basic(header: str) -> BasicCredentials | None:
    """``Basic base64(id:secret)`` split at the first colon (RFC 7617), or None."""
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic" or not token.strip():
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    client_id, colon, secret = decoded.partition(":")
    if not colon or not client_id:
        return None
    return BasicCredentials(client_id, secret)
