"""Redaction: secrets and personal data become identity-preserving placeholders.

Every secret value becomes ``<<kind:N>>``; the same raw value gets the same
placeholder wherever it appears, in requests and responses, so a cassette
still says "interaction 4 refreshed the token issued in 3" (DESIGN §4). The
redactor keeps the raw values it has seen, in memory only, for two later
steps: a substitution pass that replaces them (in every encoding) wherever
else they turn up, and the leak guard (``upsproxy.leak``) that refuses a
write if one survived anyway.

Across sessions (``--mode append``) identity rests on keyed fingerprints
(``upsproxy.fingerprint``): given a ``fingerprint`` function and the
fingerprints an earlier session stored (``known``), a value seen before gets
its earlier placeholder back; every new placeholder's fingerprint is kept in
``fingerprints`` for the recorder to store.

Structure decides first: headers by name (case-insensitive), URL query
parameters, form fields and JSON members by their decoded names; personal
fields of API bodies by ``upsproxy.redact_rules``. Values are never guessed
from their looks alone, except emails and the config's value patterns.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import quote, quote_plus, unquote_plus

from upsproxy.redact_rules import RedactRules

__all__ = ["MIN_SECRET", "PLACEHOLDER", "Redactor", "encodings"]

MIN_SECRET = 6
"""Shorter values are still redacted where they stand, but not searched for
elsewhere: a three-letter ``state`` would match half the file."""
PLACEHOLDER = re.compile(r"<<([a-z_]+):([1-9][0-9]*)>>")

# Query and form fields, by decoded name.
PARAM_KINDS = {
    "client_id": "client_id", "client_secret": "client_secret", "code": "code",
    "code_verifier": "code_verifier", "code_challenge": "code_challenge", "state": "state",
    "access_token": "access_token", "refresh_token": "refresh_token", "id_token": "access_token",
    "username": "personal", "password": "personal", "userid": "personal",
    "upsproxy_txn": "txn",
}
# JSON members of OAuth answers; ``code``/``state`` are not here: in JSON they are
# error codes and statuses.
JSON_KINDS = {
    "access_token": "access_token", "refresh_token": "refresh_token", "id_token": "access_token",
    "client_id": "client_id", "client_secret": "client_secret", "code_verifier": "code_verifier",
}
_URL_HEADERS = frozenset({"location", "content-location", "referer", "refresh"})
_TXN_HEADERS = frozenset({"transid", "x-transid"})


def _lower_hex(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), text)


@lru_cache(maxsize=4096)
def encodings(value: str) -> dict[str, str]:
    """How ``value`` can be spelled in a URL, a form, JSON or base64: text -> encoding."""
    out = {value: "raw"}
    for safe in ("", "/", "!$&'()*+,;=:@/?~"):
        for name, encoder in (("percent-encoded", quote), ("+-encoded", quote_plus)):
            text = encoder(value, safe=safe)
            out.setdefault(text, name)
            out.setdefault(_lower_hex(text), name)
            # A URL inside a URL (a sign-in page's return address) encodes twice.
            out.setdefault(quote(text, safe=""), "percent-encoded twice")
    for ascii_only in (True, False):
        out.setdefault(json.dumps(value, ensure_ascii=ascii_only)[1:-1], "JSON-escaped")
    out.setdefault(base64.b64encode(value.encode()).decode(), "base64")
    return out


class Redactor:
    """One recording session's placeholders; raw values live only in this object."""

    def __init__(self, rules: RedactRules | None = None,
                 start: dict[str, int] | None = None, *,
                 fingerprint: Callable[[str], str] | None = None,
                 known: Mapping[str, str] | None = None) -> None:
        """``start``: kind -> highest number already used. ``fingerprint``: the
        keyed fingerprint of a raw value; ``known``: placeholder -> fingerprint
        (under the same key) from earlier sessions of the cassette."""
        self.rules = rules or RedactRules()
        self._next = dict(start or {})
        self._by_value: dict[str, str] = {}
        self._fingerprint = fingerprint
        self.fingerprints: dict[str, str] = {
            text: digest for text, digest in (known or {}).items()
            if PLACEHOLDER.fullmatch(text)}
        """placeholder -> fingerprint: the earlier sessions' and this one's."""
        self._known: dict[str, str] = {}
        """fingerprint -> placeholder, for lookups."""
        for text, digest in self.fingerprints.items():
            self._known.setdefault(digest, text)
        self.kinds: dict[str, str] = {}
        """raw value -> kind, for the leak guard's messages."""
        self.first: dict[str, str] = {}
        """kind -> the first raw value seen (for shapes)."""
        self.client_ids: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._spelled: dict[str, str] = {}

    # -- placeholders --------------------------------------------------------------------

    def placeholder(self, kind: str, value: str) -> str:
        """The placeholder of ``value``: the same one for the same value, always."""
        if value in self._by_value:
            return self._by_value[value]
        if PLACEHOLDER.fullmatch(value):
            return value  # already redacted (an appended file's own placeholders)
        digest = self._fingerprint(value) if self._fingerprint is not None else None
        earlier = self._known.get(digest) if digest is not None else None
        if earlier is not None:
            text = earlier  # seen by an earlier session: its placeholder, its kind
            kind = earlier[2:earlier.index(":")]
        else:
            n = self._next.get(kind, 0) + 1
            self._next[kind] = n
            text = f"<<{kind}:{n}>>"
            if digest is not None:
                self.fingerprints[text] = digest
                self._known[digest] = text
        self._by_value[value] = text
        self.kinds[value] = kind
        self.first.setdefault(kind, value)
        if kind == "client_id":
            self.client_ids.add(value)
        self._pattern = None
        return text

    def forget_fingerprint(self, text: str) -> None:
        """Stop storing the fingerprint of placeholder ``text`` (its value keeps
        the placeholder in this session; a later session will not know it)."""
        digest = self.fingerprints.pop(text, None)
        if digest is not None and self._known.get(digest) == text:
            del self._known[digest]

    def remember(self, kind: str, value: str) -> None:
        """Treat ``value`` as secret without placing it (a JWT's personal claims)."""
        if value and value not in self._by_value:
            self.placeholder(kind, value)

    def secrets(self) -> dict[str, str]:
        """raw value -> kind, for every secret of the session."""
        return dict(self.kinds)

    # -- headers, URLs, forms ---------------------------------------------------------------

    def headers(self, pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
        """Lower-case names; duplicates joined with ", " (the cassette maps one value)."""
        out: dict[str, str] = {}
        for name, value in pairs:
            lname = name.lower()
            redacted = self.header(lname, value)
            out[lname] = f"{out[lname]}, {redacted}" if lname in out else redacted
        return out

    def header(self, name: str, value: str) -> str:
        if name in ("authorization", "proxy-authorization"):
            return self._authorization(value)
        if name == "cookie":
            return "; ".join(self._cookie_pair(p) for p in value.split(";"))
        if name == "set-cookie":
            first, sep, attributes = value.partition(";")
            return self._cookie_pair(first) + sep + attributes
        if name in _URL_HEADERS:
            return self.url(value)
        if name in _TXN_HEADERS and value:
            return self.placeholder("txn", value)
        if value and self.rules.personal_field(name):  # e.g. an AccountNumber header
            return self.placeholder("personal", value)
        return value

    def _authorization(self, value: str) -> str:
        scheme, space, token = value.strip().partition(" ")
        token = token.strip()
        if not space or not token:
            return self.placeholder("basic", value) if value else value
        if scheme.lower() == "basic":
            try:
                decoded = base64.b64decode(token, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError, ValueError):
                decoded = ""
            client_id, colon, secret = decoded.partition(":")
            if colon:
                self.placeholder("client_id", client_id)
                self.placeholder("client_secret", secret)
            return f"{scheme} {self.placeholder('basic', token)}"
        if scheme.lower() == "bearer":
            return f"{scheme} {self.placeholder('access_token', token)}"
        return f"{scheme} {self.placeholder('basic', token)}"

    def _cookie_pair(self, pair: str) -> str:
        name, eq, value = pair.strip().partition("=")
        if not eq:
            return pair.strip()
        return f"{name}={self.placeholder('cookie', value)}" if value else f"{name}="

    def url(self, url: str) -> str:
        """Query parameters and fragment parameters by decoded name; other parameters
        keep their original spelling, byte for byte."""
        base, qmark, rest = url.partition("?")
        if not qmark:
            base, hashmark, fragment = url.partition("#")
            return base + hashmark + self.query(fragment) if hashmark else url
        query, hashmark, fragment = rest.partition("#")
        return base + "?" + self.query(query) + (hashmark + self.query(fragment)
                                                 if hashmark else "")

    def query(self, query: str, kind_of: dict[str, str] = PARAM_KINDS) -> str:
        parts = []
        for part in query.split("&"):
            name, eq, value = part.partition("=")
            try:
                decoded_name = unquote_plus(name, errors="strict")
                decoded = unquote_plus(value, errors="strict")
            except UnicodeDecodeError:
                parts.append(part)
                continue
            kind = kind_of.get(decoded_name)
            if kind is None and self.rules.personal_field(decoded_name):
                kind = "personal"
            if eq and value and kind is not None:
                parts.append(f"{name}={self.placeholder(kind, decoded)}")
            else:
                parts.append(part)
        return "&".join(parts)

    def form(self, fields: dict[str, str], *, login: bool = False) -> dict[str, str]:
        """Form fields by name; on the login page every unknown field is personal (a
        real sign-in form carries a user id and password under names we cannot know)."""
        out = {}
        for name, value in fields.items():
            kind = PARAM_KINDS.get(name)
            if kind is None and (self.rules.personal_field(name)
                                 or (login and name not in _LOGIN_PLAIN)):
                kind = "personal"
            out[name] = self.placeholder(kind, value) if kind and value else value
        return out

    # -- JSON ---------------------------------------------------------------------------------

    def json(self, node: Any, *, oauth: bool, request: bool = False,
             where: tuple[str | int, ...] = ()) -> Any:
        """JSON bodies, recursively: OAuth members (in OAuth exchanges) and personal
        fields. A JSON *request* to an OAuth endpoint is a form in disguise: there
        ``code`` and ``state`` are the secrets they are in a form."""
        kinds = (PARAM_KINDS if request else JSON_KINDS) if oauth else {}
        if isinstance(node, dict):
            out = {}
            for key, value in node.items():
                name = str(key)
                child = (*where, name)
                kind = kinds.get(name)
                if kind is not None and isinstance(value, str) and value:
                    out[key] = self.placeholder(kind, value)
                elif self.rules.personal_field(name) or self.rules.personal_path(child):
                    out[key] = self._personal(value)
                else:
                    out[key] = self.json(value, oauth=oauth, request=request, where=child)
            return out
        if isinstance(node, list):
            return [self.json(v, oauth=oauth, request=request, where=(*where, n))
                    for n, v in enumerate(node)]
        if isinstance(node, str):
            if self.rules.personal_path(where):
                return self._personal(node)
            return self.patterns(node)
        if self.rules.personal_path(where) and node is not None:
            return self._personal(node)
        return node

    def _personal(self, node: Any) -> Any:
        if isinstance(node, dict):
            return {k: self._personal(v) for k, v in node.items()}
        if isinstance(node, list):
            return [self._personal(v) for v in node]
        if isinstance(node, bool) or node is None:
            return node
        text = str(node)
        return self.placeholder("personal", text) if text else text

    def patterns(self, text: str) -> str:
        """Emails and the config's value patterns, wherever they match in ``text``."""
        for pattern in self.rules.patterns:
            if pattern.search(text):
                text = pattern.sub(lambda m: self._keep_placeholder(m.group(0)), text)
        return text

    def _keep_placeholder(self, match: str) -> str:
        return match if PLACEHOLDER.fullmatch(match) else self.placeholder("personal", match)

    # -- everywhere else ----------------------------------------------------------------------

    def substitute(self, node: Any) -> Any:
        """Replace every known secret (in every encoding) in every string of ``node``.

        Structure catches secrets where they belong; this catches their echoes
        (a state inside an HTML page, a code in a fragment, a token in a text
        body), including echoes recorded before the secret was known."""
        if isinstance(node, str):
            return self._substitute_text(node)
        if isinstance(node, dict):
            return {k: self.substitute(v) for k, v in node.items()}
        if isinstance(node, list):
            return [self.substitute(v) for v in node]
        return node

    def _substitute_text(self, text: str) -> str:
        if self._pattern is None:
            variants: dict[str, str] = {}
            for value, placeholder in self._by_value.items():
                if len(value) >= MIN_SECRET:
                    for spelled in encodings(value):
                        variants.setdefault(spelled, placeholder)
            self._spelled = variants
            # Longest first: a token that contains a shorter secret is replaced whole.
            alternatives = sorted(variants, key=len, reverse=True)
            self._pattern = re.compile("|".join(map(re.escape, alternatives))) if variants \
                else _NEVER
        return self._pattern.sub(lambda m: self._spelled[m.group(0)], text)


_LOGIN_PLAIN = frozenset({"decision", "response_type", "scope", "redirect_uri", "type",
                          "locale", "lang"})
_NEVER = re.compile(r"(?!)")

