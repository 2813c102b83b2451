"""Unit tests of upsproxy.redact_rules and the config file's redact: section."""

import pytest

from upsproxy.config import load_config
from upsproxy.errors import ConfigError
from upsproxy.redact_rules import RedactRules, parse_path


def test_defaults_cover_ups_personal_fields():
    rules = RedactRules()
    for name in ("AddressLine", "addressLine3", "receivedBy", "ShipperNumber", "EMailAddress",
                 "PhoneNumber", "AttentionName", "signature", "account_number"):
        assert rules.personal_field(name.replace("EMail", "Email")), name
    for name in ("city", "countryCode", "trackingNumber", "status", "code", "description"):
        assert not rules.personal_field(name), name


def test_paths():
    assert parse_path("$.a.b[*].c[2]") == ("a", "b", "[]", "c", "[2]")
    rules = RedactRules(paths=(parse_path("a[*].b"), parse_path("x.*")))
    assert rules.personal_path(("a", 3, "b")) and rules.personal_path(("x", "y"))
    assert not rules.personal_path(("a", "b")) and not rules.personal_path(("a", 0, "c"))
    with pytest.raises(ValueError):
        parse_path("")


def test_the_config_section(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("redact:\n  fields: [Ref-Code]\n  keep: [name]\n  paths: ['a.b']\n")
    rules = load_config(path).redact
    assert rules.personal_field("refCode") and not rules.personal_field("Name")
    assert rules.personal_path(("a", "b"))
    assert load_config(path).apps is None  # record-only configs leave replay open


@pytest.mark.parametrize(("text", "line", "reason"), [
    ("redact:\n  fields: name\n", 2, "redact.fields must be a list of text"),
    ("redact:\n  colour: [x]\n", 2, "unknown redact key 'colour'"),
    ("redact:\n  patterns: ['.*']\n", 2, "matches the empty text"),
    ("redact:\n  paths: ['a..b']\n", 2, "redact.paths: cannot read JSON path"),
])
def test_bad_sections_name_file_and_line(tmp_path, text, line, reason):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.line == line and reason in caught.value.reason
