"""What replay takes from a cassette: body layouts, lifetimes, shapes, headers.

The cassette decides the token answer's field set, key order and static
values; replay fills the dynamic fields (tokens, times, counts, client) from
its own state. Anything a cassette lacks falls back to the 2024 CIE capture
described in DESIGN §3, so a minimal cassette still answers like UPS.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

from upsproxy.cassette import Cassette, Interaction
from upsproxy.shapes import JwtShape, Shape, TokenShape

__all__ = ["DYNAMIC_FIELDS", "MAX_LIFETIME_S", "Lifetimes", "ReplayProfile",
           "profile_from_cassette", "with_lifetimes"]

# The 2024 CIE success body, in UPS's key order (DESIGN §3).
_DEFAULT_FIELDS: tuple[tuple[str, str | None], ...] = (
    ("refresh_token_expires_in", None),
    ("refresh_token_status", "approved"),
    ("token_type", "Bearer"),
    ("issued_at", None),
    ("client_id", None),
    ("access_token", None),
    ("refresh_token", None),
    ("refresh_token_issued_at", None),
    ("expires_in", None),
    ("status", "approved"),
)
DYNAMIC_FIELDS = frozenset({
    "refresh_token_expires_in", "issued_at", "client_id", "access_token", "refresh_token",
    "refresh_token_issued_at", "expires_in", "refresh_count",
})
_DEFAULT_CODE = TokenShape("base64", 132, 2)
_DEFAULT_REFRESH = TokenShape("base64", 164, 0)
_DEFAULT_JWT = JwtShape(
    {"kid": "<<random:36>>", "typ": "JWT", "alg": "RS384"},
    {"iss": "https://apis.ups.com", "clientid": "<<client_id>>", "iat": 0, "exp": 0},
    342,
)


@dataclass(frozen=True)
class RecordedError:
    status: int
    code: str
    message: str
    kind: str


@dataclass(frozen=True)
class ReplayProfile:
    token_fields: tuple[tuple[str, str | None], ...] = _DEFAULT_FIELDS
    """(key, static value) in answer order; None marks a field replay fills."""
    refresh_fields: tuple[tuple[str, str | None], ...] = _DEFAULT_FIELDS
    access_ttl_s: int = 14399
    refresh_ttl_s: int = 5183999
    code_ttl_s: int = 300
    login_ttl_s: int = 600
    code_shape: Shape = _DEFAULT_CODE
    refresh_shape: Shape = _DEFAULT_REFRESH
    access_shape: Shape = _DEFAULT_JWT
    login_url: str = "https://www.ups.com/lasso/signin"
    app_name: str = "Sandbox App"
    display_name: str = "Sandbox App"
    token_headers: tuple[tuple[str, str], ...] = ()
    errors: dict[str, RecordedError] = field(default_factory=dict)
    """Recorded error answers by their cassette name (for faults)."""


def profile_from_cassette(cassette: Cassette) -> ReplayProfile:
    values: dict[str, object] = {}
    token = _first_success(cassette.of_kind("token"))
    refresh = _first_success(cassette.of_kind("refresh"))
    if token is not None:
        values["token_fields"] = _fields(token)
        values["token_headers"] = _extra_headers(token)
        values.update(_lifetimes(token))
    if refresh is not None:
        values["refresh_fields"] = _fields(refresh)
    elif token is not None:
        values["refresh_fields"] = values["token_fields"]
    for key, shape_key in (("code", "code_shape"), ("refresh_token", "refresh_shape"),
                           ("access_token", "access_shape")):
        if key in cassette.shapes:
            values[shape_key] = cassette.shapes[key]
    authorize = next((i for i in cassette.of_kind("authorize") if i.response.status == 302), None)
    if authorize is not None:
        location = authorize.response.header("location") or ""
        parts = urlsplit(location)
        if parts.scheme and parts.netloc:
            values["login_url"] = f"{parts.scheme}://{parts.netloc}{parts.path}"
        if app := authorize.response.header("appname"):
            values["app_name"] = app
        if display := authorize.response.header("displayname"):
            values["display_name"] = display
    values["errors"] = _errors(cassette)
    return ReplayProfile(**values)  # type: ignore[arg-type]


def _first_success(interactions: list[Interaction]) -> Interaction | None:
    for interaction in interactions:
        body = interaction.response.json()
        if interaction.response.status == 200 and isinstance(body, dict):
            return interaction
    return None


def _fields(interaction: Interaction) -> tuple[tuple[str, str | None], ...]:
    body = interaction.response.json()
    assert isinstance(body, dict)
    return tuple(
        (str(key), None if key in DYNAMIC_FIELDS else str(value)) for key, value in body.items()
    )


def _extra_headers(interaction: Interaction) -> tuple[tuple[str, str], ...]:
    # Framing headers are the proxy's to set; a cassette holds decoded bodies.
    skip = {"content-type", "content-length", "date", "set-cookie", "connection",
            "transfer-encoding", "content-encoding"}
    return tuple((k, v) for k, v in interaction.response.headers.items() if k.lower() not in skip)


MAX_LIFETIME_S = 10 * 365 * 24 * 3600


def _lifetimes(interaction: Interaction) -> dict[str, int]:
    body = interaction.response.json()
    out: dict[str, int] = {}
    for key, target in (("expires_in", "access_ttl_s"),
                        ("refresh_token_expires_in", "refresh_ttl_s")):
        text = str(body.get(key))
        # ASCII digits only ("²".isdigit() is true), and at most ten years.
        if text.isascii() and text.isdigit() and 0 < int(text) <= MAX_LIFETIME_S:
            out[target] = int(text)
    return out


def _errors(cassette: Cassette) -> dict[str, RecordedError]:
    out: dict[str, RecordedError] = {}
    for interaction in cassette.interactions:
        if interaction.name is None:
            continue
        body = interaction.response.json()
        try:
            first = body["response"]["errors"][0]
            out[interaction.name] = RecordedError(
                interaction.response.status, str(first["code"]), str(first["message"]),
                interaction.kind)
        except (KeyError, IndexError, TypeError):
            continue
    return out


@dataclass(frozen=True)
class Lifetimes:
    """Lifetimes (seconds) that override the cassette's: ``--access-ttl`` etc.

    ``access_s`` is what ``expires_in`` says; the token itself lives one second
    longer (JWT ``exp`` - ``iat`` = ``expires_in`` + 1), as captured from UPS.
    """

    access_s: int | None = None
    refresh_s: int | None = None
    code_s: int | None = None


def with_lifetimes(profile: ReplayProfile, lifetimes: Lifetimes) -> ReplayProfile:
    """``profile`` with the given lifetimes; ValueError names a bad one."""
    changes: dict[str, int] = {}
    for name, value, target in (("access", lifetimes.access_s, "access_ttl_s"),
                                ("refresh", lifetimes.refresh_s, "refresh_ttl_s"),
                                ("code", lifetimes.code_s, "code_ttl_s")):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or \
                not 1 <= value <= MAX_LIFETIME_S:
            raise ValueError(f"the {name} lifetime must be whole seconds from 1 to "
                             f"{MAX_LIFETIME_S} (ten years), not {value!r}")
        changes[target] = value
    return replace(profile, **changes) if changes else profile  # type: ignore[arg-type]
