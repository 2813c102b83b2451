import pytest

from upsproxy.config import load_config
from upsproxy.errors import ConfigError

GOOD = """\
apps:
  - client_id: TESTCLIENT
    client_secret: S3CRET
    redirect_uris: [https://app.example.test/cb, http://127.0.0.1:9000/cb]
errors:
  invalid_code: {status: 401, message: Nope}
"""


def write(tmp_path, text):
    path = tmp_path / "upsproxy.yaml"
    path.write_text(text)
    return path


def problem(tmp_path, text):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    return err.value


def test_a_good_config(tmp_path):
    config = load_config(write(tmp_path, GOOD))
    assert config.apps["TESTCLIENT"].redirect_uris[1] == "http://127.0.0.1:9000/cb"
    assert config.error_overrides == {"invalid_code": {"status": 401, "message": "Nope"}}
    assert "S3CRET" not in repr(config.apps["TESTCLIENT"])


def test_empty_file_is_an_open_sandbox(tmp_path):
    assert load_config(write(tmp_path, "")).apps is None


@pytest.mark.parametrize(("bad", "line", "words"), [
    (GOOD.replace("https://app.example.test/cb", "not-a-url"), 4, "not an absolute"),
    (GOOD.replace("https://app.example.test/cb", "https://a.test/cb#x"), 4, "fragment"),
    (GOOD.replace("redirect_uris: [https://app.example.test/cb, http://127.0.0.1:9000/cb]",
                  "redirect_uris: []"), 4, "non-empty list"),
    (GOOD.replace("invalid_code", "no_such_error"), 6, "unknown error name"),
    (GOOD.replace("status: 401", "status: '401'"), 6, "integer"),
    (GOOD.replace("client_secret", "client_secrett"), 3, "unknown app key"),
    (GOOD.replace("client_id: TESTCLIENT", "client_id: 'TEST:CLIENT'"), 2, "without ':'"),
    (GOOD.replace("https://app.example.test/cb", "'https://app.example.test/cb x'"), 4,
     "spaces"),
    (GOOD.replace("message: Nope", 'message: "a\\r\\nX-Injected: 1"'), 6,
     "one line"),
    (GOOD + "apps: []\n", 7, "given twice"),
    (GOOD.replace("errors:", "  - client_id: TESTCLIENT\n    redirect_uris: [https://x.test/]\n"
                  "errors:"), 5, "twice"),
])
def test_problems_name_their_line(tmp_path, bad, line, words):
    err = problem(tmp_path, bad)
    assert err.line == line and words in err.reason


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "none.yaml")


def test_an_app_name_must_fit_on_one_line(tmp_path):
    err = problem(tmp_path, GOOD.replace("    client_secret: S3CRET\n",
                                         '    client_secret: S3CRET\n    name: "A\\r\\nB"\n'))
    assert err.line == 4 and "one line" in err.reason


def test_aliases_are_refused_in_configs_too(tmp_path):
    text = "apps:\n  - &a {client_id: A}\n  - *a\n"
    assert "aliases" in problem(tmp_path, text).reason
