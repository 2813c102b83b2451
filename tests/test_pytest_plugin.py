"""The pytest plugin as a user's project sees it: a separate pytest run."""

pytest_plugins = ["pytester"]


def test_a_mistyped_marker_argument_fails_the_test_with_the_known_names(pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.upsproxy(autoapprove=True)
        def test_typo(upsproxy):
            pass

        @pytest.mark.upsproxy(auto_approve="yes")
        def test_not_a_bool(upsproxy):
            pass
        """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines([
        "*unknown argument(s) autoapprove; known: access_ttl, auto_approve, block_other_hosts, "
        "cassette, code_ttl, config, faults, refresh_ttl, state*",
        "*auto_approve must be True or False*",
    ])


def test_each_test_gets_a_fresh_sandbox_and_teardown_resets_the_server(pytester):
    pytester.makepyfile(
        """
        import pytest
        import requests

        seen = []

        @pytest.mark.upsproxy(auto_approve=True)
        def test_first(upsproxy):
            seen.append(upsproxy.sandbox)
            resp = requests.get(
                upsproxy.base_url + "/security/v1/oauth/authorize",
                params={"client_id": "C", "redirect_uri": "https://app.test/cb",
                        "response_type": "code"},
                allow_redirects=False, timeout=10)
            assert resp.status_code == 302 and "code=" in resp.headers["Location"]

        def test_second_sees_a_default_sandbox(upsproxy_server):
            sandbox = upsproxy_server.replay.sandbox
            assert sandbox is not seen[0]
            assert not sandbox.auth.auto_approve

        def test_third(upsproxy):
            assert upsproxy.sandbox is not seen[0]
        """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)


def test_positional_marker_arguments_are_refused(pytester):
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.upsproxy("cassettes/x.yaml")
        def test_positional(upsproxy):
            pass
        """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*takes keyword arguments only*"])


def test_a_suite_that_turns_warnings_into_errors_still_gets_its_sandbox(pytester):
    pytester.makepyfile(
        """
        import requests

        def test_token_endpoint_answers(upsproxy):
            resp = requests.post(upsproxy.base_url + "/security/v1/oauth/token",
                                 data={"grant_type": "authorization_code"}, timeout=10)
            assert resp.status_code == 401
        """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "error")
    result.assert_outcomes(passed=1)


def test_lifetime_and_state_marker_keys_and_mint_code(pytester):
    pytester.makepyfile(
        """
        import pytest
        import requests

        @pytest.mark.upsproxy(access_ttl="60")
        def test_not_an_int(upsproxy):
            pass

        @pytest.mark.upsproxy(access_ttl=60, state="state.db")
        def test_lifetime_and_state(upsproxy):
            code = upsproxy.mint_code("C", "https://app.test/cb")
            resp = requests.post(upsproxy.base_url + "/security/v1/oauth/token",
                                 data={"grant_type": "authorization_code", "code": code,
                                       "redirect_uri": "https://app.test/cb"},
                                 auth=("C", "s"), timeout=10)
            assert resp.status_code == 200 and resp.json()["expires_in"] == "60"
            assert type(upsproxy.sandbox.store).__name__ == "SqliteStore"
        """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*access_ttl must be whole seconds*"])
    assert (pytester.path / "state.db").stat().st_size > 0


def test_faults_from_the_marker_and_the_handle(pytester):
    pytester.makefile(".yaml", faults="- endpoint: token\n  preset: rate_limited\n  times: 1\n")
    pytester.makepyfile(
        """
        import pytest
        import requests

        TOKEN = "/security/v1/oauth/token"

        @pytest.mark.upsproxy(faults="faults.yaml")
        def test_file(upsproxy):
            assert requests.post(upsproxy.base_url + TOKEN, timeout=10).status_code == 429
            assert requests.post(upsproxy.base_url + TOKEN, timeout=10).status_code == 400

        @pytest.mark.upsproxy(faults=[{"endpoint": "token", "preset": "server_error"},
                                      "refresh:invalid_client"])
        def test_list(upsproxy):
            assert requests.post(upsproxy.base_url + TOKEN, timeout=10).status_code == 500
            assert [r["fired"] for r in upsproxy.faults.rules()] == [1, 0]

        def test_handle(upsproxy):
            upsproxy.faults.add({"endpoint": "token", "status": 418, "body": "teapot"})
            resp = requests.post(upsproxy.base_url + TOKEN, timeout=10)
            assert (resp.status_code, resp.text) == (418, "teapot")

        def test_none_left_over(upsproxy):
            assert upsproxy.faults.rules() == []

        @pytest.mark.upsproxy(faults=[{"endpoint": "token", "preset": "nope"}])
        def test_bad_rule(upsproxy):
            pass

        @pytest.mark.upsproxy(faults="missing.yaml")
        def test_missing_file(upsproxy):
            pass
        """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=4, errors=2)
    result.stdout.fnmatch_lines([
        "*@pytest.mark.upsproxy: faults: 0.preset: unknown preset 'nope'*",
        "*@pytest.mark.upsproxy: *missing.yaml: no such file*",
    ])
