"""Which endpoint a request is for, through the proxy and on the reverse listener."""

import pytest

from upsproxy.messages import Request
from upsproxy.routes import endpoint_of


def ep(path, host="wwwcie.ups.com", origin=None):
    return endpoint_of(Request("GET", host, path, origin=origin))


@pytest.mark.parametrize(("path", "expected"), [
    ("/security/v1/oauth/authorize", "authorize"),
    ("/security/v1/oauth/token", "token"),
    ("/security/v1/oauth/refresh", "refresh"),
    ("/api/track/v1/details/1Z", "api"),
    ("/api/security/v1/oauth/token", None),  # C11: a wrong base path is no endpoint
    ("/security/v1/oauth/token/", None),
    ("/lasso/signin", None),  # the login page is on www.ups.com, not the API host
])
def test_api_host_paths(path, expected):
    assert ep(path) == expected
    assert ep(path, host="onlinetools.ups.com") == expected


def test_login_page_host_and_reverse_listener():
    assert ep("/lasso/signin", host="www.ups.com") == "login"
    assert ep("/security/v1/oauth/token", host="www.ups.com") is None
    listener = "http://127.0.0.1:8081"
    assert ep("/lasso/signin", host="127.0.0.1", origin=listener) == "login"
    assert ep("/security/v1/oauth/token", host="anything", origin=listener) == "token"


def test_other_hosts_are_no_ups_endpoint():
    assert ep("/security/v1/oauth/token", host="example.test") is None
