"""The sandbox's stand-in for UPS's login page (``/lasso/signin``).

Real UPS asks a human to sign in and approve the app. The sandbox serves a
small, real HTML form instead, so browsers, Selenium/Playwright scripts and
SDKs that follow redirects all have something to submit: *Approve* sends the
user back with a code, *Deny* with ``error=access_denied``.
"""

from __future__ import annotations

from html import escape

from upsproxy.messages import Response

__all__ = ["login_form", "login_problem"]

_STYLE = (
    "body{font-family:system-ui,sans-serif;background:#f4f1ee;margin:0}"
    "main{max-width:26rem;margin:4rem auto;background:#fff;padding:2rem;border-radius:8px;"
    "box-shadow:0 1px 4px #0003}h1{font-size:1.3rem;color:#351c15}"
    "label{display:block;margin:.6rem 0 .2rem}input[type=text],input[type=password]"
    "{width:100%;padding:.4rem;box-sizing:border-box}.row{display:flex;gap:1rem;margin-top:1.2rem}"
    "button{flex:1;padding:.6rem;font-size:1rem;border-radius:4px;border:1px solid #351c15}"
    "#approve{background:#ffc400}.note{color:#666;font-size:.85rem}"
)


def _page(title: str, inner: str, status: int, rule: str) -> Response:
    html = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        '<link rel=icon href="data:,">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main>{inner}</main></body></html>"
    )
    return Response(
        status,
        (("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store")),
        html.encode(),
        rule,
    )


def login_form(*, txn: str, app_name: str, client_id: str, scope: str | None,
               action: str) -> Response:
    scope_line = f"<p>Access requested: <b>{escape(scope)}</b></p>" if scope else ""
    inner = (
        "<h1>UPS sign in (upsproxy sandbox)</h1>"
        f"<p><b>{escape(app_name)}</b> (client <code>{escape(client_id)}</code>) wants to "
        "access your UPS account.</p>"
        f"{scope_line}"
        f'<form method=post action="{escape(action)}">'
        f'<input type=hidden name=upsproxy_txn value="{escape(txn)}">'
        '<label for=username>User ID</label>'
        '<input type=text id=username name=username value="sandbox-user" autocomplete=off>'
        '<label for=password>Password</label>'
        '<input type=password id=password name=password value="sandbox" '
        'autocomplete=current-password>'
        '<div class=row>'
        '<button type=submit id=approve name=decision value=approve autofocus>Approve</button>'
        '<button type=submit id=deny name=decision value=deny>Deny</button>'
        "</div></form>"
        '<p class=note>Offline sandbox: any user ID and password are accepted.</p>'
    )
    return _page("UPS sign in - upsproxy sandbox", inner, 200, "login.page")


def login_problem(reason: str, rule: str) -> Response:
    inner = f"<h1>Sign-in problem</h1><p>{escape(reason)}</p>"
    return _page("UPS sign in - problem", inner, 400, rule)
