"""Which fields of UPS bodies are personal: the default rule set and its config form.

A recorder that needs configuration before it stops leaking names and
addresses would leak them on the first run, so the defaults cover what UPS
API bodies carry about people (DESIGN §4): names, address lines, phone
numbers, emails, account and shipper numbers, who signed for a package, and
signature and delivery photos. The config file's ``redact:`` section extends
or relaxes them::

    redact:
      fields: [customerReference]        # more field names (any body, any depth)
      paths: ["trackResponse.shipment[*].package[*].referenceNumber[*].number"]
      patterns: ['\\b1Z[0-9A-Z]{16}\\b']  # regexes: every match in a string value
      keep: [attentionName]              # default field names NOT to redact

Field names are compared without case and without ``_``/``-``
(``address_line_1`` is ``addressLine1``). OAuth secrets (codes, tokens,
client credentials, state, cookies) are not rules: they are always redacted
and ``keep`` cannot relax them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from upsproxy.yamlfile import Invalid, Where

__all__ = ["DEFAULT_FIELDS", "RedactRules", "normalise", "parse_path", "parse_rules"]

DEFAULT_FIELDS = frozenset({
    # people and companies
    "name", "firstname", "lastname", "middlename", "fullname", "displayname", "attentionname",
    "contactname", "companyname", "consigneename", "shippername", "shiptoname", "username",
    "userid", "receivedby", "signedforbyname", "signedby", "leftwith",
    # where they live
    "addressline", "addresslines", "street", "streetaddress", "streetname",
    # how to reach them
    "phone", "phonenumber", "phones", "telephone", "mobile", "mobilenumber", "fax",
    "faxnumber", "email", "emailaddress", "emails",
    # whose money
    "accountnumber", "shippernumber", "shipperaccountnumber", "paymentaccountnumber",
    "billingaccountnumber", "accountno",
    # images of them
    "signature", "photo", "image", "pod",
    # login forms
    "password", "pwd", "passcode",
})
_DEFAULT_NAME_PATTERNS = (re.compile(r"addressline\d*"),)
# Emails anywhere in a text value (free-text descriptions, references).
DEFAULT_VALUE_PATTERNS = (re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"),)
_PATH_STEP = re.compile(r"\[(\*|[0-9]+)\]|\.?([^.\[\]]+)")


def normalise(name: str) -> str:
    """``address_line_1`` -> ``addressline1``: how field names are compared."""
    return "".join(c for c in name.lower() if c.isalnum())


@dataclass(frozen=True)
class RedactRules:
    fields: frozenset[str] = DEFAULT_FIELDS
    """Normalised field names whose values are personal."""
    keep: frozenset[str] = frozenset()
    paths: tuple[tuple[str, ...], ...] = ()
    """JSON paths as steps: a key, ``*`` (any key) or ``[]`` (any index) / ``[N]``."""
    patterns: tuple[re.Pattern[str], ...] = DEFAULT_VALUE_PATTERNS

    def personal_field(self, name: str) -> bool:
        norm = normalise(name)
        if norm in self.keep:
            return False
        return norm in self.fields or any(p.fullmatch(norm) for p in _DEFAULT_NAME_PATTERNS)

    def personal_path(self, where: tuple[str | int, ...]) -> bool:
        return any(_path_matches(path, where) for path in self.paths)


def _path_matches(path: tuple[str, ...], where: tuple[str | int, ...]) -> bool:
    if len(path) != len(where):
        return False
    for step, actual in zip(path, where, strict=True):
        if step == "*" or (step == "[]" and isinstance(actual, int)):
            continue
        if isinstance(actual, int):
            if step != f"[{actual}]":
                return False
        elif step != actual:
            return False
    return True


def parse_path(text: str) -> tuple[str, ...]:
    """``$.a.b[*].c`` / ``a.b[0].c`` -> steps; ValueError when it is not a path."""
    body = text[1:] if text.startswith("$") else text
    steps: list[str] = []
    pos = 0
    while pos < len(body):
        match = _PATH_STEP.match(body, pos)
        if match is None or match.end() == pos:
            raise ValueError(f"cannot read JSON path {text!r} at character {pos + 1}")
        index, key = match.groups()
        steps.append("[]" if index == "*" else f"[{index}]" if index is not None else key)
        pos = match.end()
    if not steps:
        raise ValueError(f"empty JSON path {text!r}")
    return tuple(steps)


def parse_rules(raw: Any, where: Where = ("redact",)) -> RedactRules:
    """The ``redact:`` section of a config file; Invalid names the bad entry."""
    if raw is None:
        return RedactRules()
    if not isinstance(raw, dict):
        raise Invalid(where, "'redact' is a mapping with fields, paths, patterns and/or keep")
    unknown = set(raw) - {"fields", "paths", "patterns", "keep"}
    if unknown:
        key = sorted(map(str, unknown))[0]
        raise Invalid((*where, key), f"unknown redact key {key!r}; known: fields, keep, "
                      "paths, patterns")
    lists: dict[str, list[str]] = {}
    for key in ("fields", "paths", "patterns", "keep"):
        value = raw.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise Invalid((*where, key), f"redact.{key} must be a list of text")
        lists[key] = value
    paths = []
    for n, text in enumerate(lists["paths"]):
        try:
            paths.append(parse_path(text))
        except ValueError as exc:
            raise Invalid((*where, "paths", n), f"redact.paths: {exc}") from None
    patterns = list(DEFAULT_VALUE_PATTERNS)
    for n, text in enumerate(lists["patterns"]):
        try:
            pattern = re.compile(text)
        except re.error as exc:
            raise Invalid((*where, "patterns", n), f"redact.patterns: {exc}") from None
        if pattern.search(""):
            raise Invalid((*where, "patterns", n), "redact.patterns: a pattern that matches "
                          "the empty text would match everywhere")
        patterns.append(pattern)
    return RedactRules(
        fields=DEFAULT_FIELDS | {normalise(f) for f in lists["fields"]},
        keep=frozenset(normalise(f) for f in lists["keep"]),
        paths=tuple(paths),
        patterns=tuple(patterns),
    )

