"""The answers fault rules give: their own error bodies, and redirects with a
dropped or wrong ``state``. Pure functions of a rule's values and the
sandbox's answer, kept apart from the engine that decides when they apply.
"""

from __future__ import annotations

import http
from dataclasses import replace
from html import escape
from urllib.parse import parse_qsl, quote, unquote_plus

from upsproxy.envelopes import ErrorSpec, error_response
from upsproxy.fault_rules import ErrorAnswer
from upsproxy.messages import Response

__all__ = ["WRONG_STATE", "error_answer", "is_callback_redirect", "merge_headers",
           "rewrite_state"]

WRONG_STATE = "upsproxy-wrong-state"
"""What ``wrong_state`` puts in place of the app's ``state``."""
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


def merge_headers(base: tuple[tuple[str, str], ...],
                  extra: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """``base`` with ``extra`` added; a name in ``extra`` replaces it in ``base``."""
    names = {name.lower() for name, _ in extra}
    return tuple(h for h in base if h[0].lower() not in names) + extra


def error_answer(error: ErrorAnswer, label: str,
                 headers: tuple[tuple[str, str], ...] = ()) -> Response:
    """A rule's own answer: a compact UPS envelope unless ``body`` says otherwise."""
    if error.body is None:
        base = error_response(ErrorSpec(error.status, error.code, error.message), rule=label)
    elif error.body == "empty":
        base = Response(error.status, (), b"", label)
    elif error.body == "html":
        try:
            phrase = http.HTTPStatus(error.status).phrase
        except ValueError:
            phrase = "Error"
        title = escape(f"{error.status} {phrase}")
        page = (f"<!DOCTYPE html><html><head><title>{title}</title></head><body>"
                f"<h1>{title}</h1><p>{escape(error.message)}</p></body></html>")
        base = Response(error.status, (("Content-Type", "text/html; charset=utf-8"),),
                        page.encode(), label)
    else:
        base = Response(error.status, (("Content-Type", "text/plain; charset=utf-8"),),
                        error.body.encode(), label)
    return replace(base, headers=merge_headers(base.headers, headers)) if headers else base


def is_callback_redirect(response: Response) -> bool:
    """A redirect that carries an OAuth result (``code`` or ``error``) back to the app."""
    if response.status not in _REDIRECTS:
        return False
    location = response.header("location") or ""
    query = location.partition("#")[0].partition("?")[2]
    return any(key in ("code", "error") for key, _ in parse_qsl(query, keep_blank_values=True))


def rewrite_state(response: Response, action: str, label: str) -> Response:
    """The redirect without its ``state`` (``drop_state``) or with a wrong one.
    Every other byte of the Location stays as the sandbox (or UPS) sent it."""
    location = response.header("location") or ""
    rest, hash_mark, fragment = location.partition("#")
    base, _, query = rest.partition("?")
    kept: list[str] = []
    original: str | None = None
    position: int | None = None
    for part in filter(None, query.split("&")):
        name, _, value = part.partition("=")
        if unquote_plus(name) == "state":
            original = unquote_plus(value)
            position = len(kept) if position is None else position
            continue
        kept.append(part)
    if action == "wrong_state":
        wrong = WRONG_STATE if original != WRONG_STATE else WRONG_STATE + "-2"
        kept.insert(len(kept) if position is None else position,
                    "state=" + quote(wrong, safe=""))
    new = base + ("?" + "&".join(kept) if kept else "") + hash_mark + fragment
    headers = tuple((k, new if k.lower() == "location" else v) for k, v in response.headers)
    return replace(response, headers=headers, rule=f"{response.rule} {label}")
