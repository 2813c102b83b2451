"""Recorded API answers rewritten for the caller and the sandbox clock."""

import json

from upsproxy.rewrite import Template, recorded_epoch_ms

DAY = 86_400_000
RECORDED = recorded_epoch_ms({"recorded_at": "2024-06-01T00:00:00Z"})


def render(body, now_ms, recorded=RECORDED):
    return json.loads(Template(body, recorded).render(token="TOK", client_id="CID",
                                                     now_ms=now_ms))


def test_tokens_and_clients_become_the_callers():
    out = render({"a": "<<access_token:3>>", "b": ["<<client_id:1>>"], "c": "<<personal:1>>"},
                 RECORDED)
    assert out == {"a": "TOK", "b": ["CID"], "c": "<<personal:1>>"}


def test_dates_move_by_whole_days_to_the_sandbox_clock():
    body = {"deliveryDate": [{"date": "20240601"}], "time": "143000",
            "when": "2024-06-02T10:00:00Z", "day": "2024-05-31", "issued_at": "1717000000000",
            "stamp_at": 1717000000000, "count": "20240601", "datetimeish": "20241399"}
    out = render(body, RECORDED + 10 * DAY + 5000)
    assert out["deliveryDate"][0]["date"] == "20240611" and out["time"] == "143000"
    assert out["when"] == "2024-06-12T10:00:00Z" and out["day"] == "2024-06-10"
    assert out["issued_at"] == str(1717000000000 + 10 * DAY)
    assert out["stamp_at"] == 1717000000000 + 10 * DAY
    assert out["count"] == "20240601"  # not under a key that names a date
    assert out["datetimeish"] == "20241399"  # looks like a date, is not one


def test_without_recorded_at_dates_stay_and_a_plain_answer_is_encoded_once():
    assert recorded_epoch_ms({}) is None and recorded_epoch_ms({"recorded_at": "soon"}) is None
    assert render({"date": "20240601"}, RECORDED + 99 * DAY, None) == {"date": "20240601"}
    plain = Template({"x": 1}, RECORDED)
    assert plain.spots == [] and plain.render(token="t", client_id="c", now_ms=0) == b'{"x":1}'
