"""The control API's router and guards (the endpoints are tested with their features)."""

import json

from factories import make_sandbox

from upsproxy.control import ControlError, is_loopback
from upsproxy.messages import Request

ORIGIN = "http://127.0.0.1:8081"


def call(sandbox, method, name, body=b"", *, peer="127.0.0.1", origin=ORIGIN):
    return sandbox.handle(Request(method, "127.0.0.1", f"/_upsproxy/{name}", body=body,
                                  origin=origin, peer=peer))


def test_registered_handlers_get_the_parsed_body_and_answer_json():
    sandbox = make_sandbox()
    sandbox.control.add("POST", "echo", lambda req, body: {"got": body})
    resp = call(sandbox, "POST", "echo", b'{"a": 1}')
    assert resp.status == 200 and json.loads(resp.body) == {"got": {"a": 1}}
    assert resp.header("content-type") == "application/json"


def test_refusals_are_json_with_a_reason():
    sandbox = make_sandbox()

    def refuse(req, body):
        raise ControlError("no such thing", 409)

    sandbox.control.add("POST", "refuse", refuse)
    assert call(sandbox, "POST", "refuse").status == 409
    assert call(sandbox, "GET", "refuse").status == 405
    assert call(sandbox, "GET", "nothing-here").status == 404
    bad = call(sandbox, "POST", "refuse", b"{not json")
    assert bad.status == 400 and "JSON" in json.loads(bad.body)["error"]


def test_only_loopback_peers_on_the_reverse_listener_are_answered():
    sandbox = make_sandbox()
    sandbox.control.add("GET", "ping", lambda req, body: {"ok": True})
    assert call(sandbox, "GET", "ping").status == 200
    assert call(sandbox, "GET", "ping", peer="::1").status == 200
    assert call(sandbox, "GET", "ping", peer="::ffff:127.0.0.1").status == 200
    assert call(sandbox, "GET", "ping", peer="192.0.2.7").status == 403
    assert call(sandbox, "GET", "ping", peer=None).status == 403
    through_proxy = call(sandbox, "GET", "ping", origin=None)  # a UPS host, not the listener
    assert through_proxy.status == 404 and b"10404" in through_proxy.body


def test_loopback_detection():
    assert is_loopback("127.0.0.5") and is_loopback("::1")
    assert not is_loopback("10.0.0.1") and not is_loopback("garbage") and not is_loopback("")
