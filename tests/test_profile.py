"""Lifetime overrides applied to a cassette's replay profile."""

import pytest

from upsproxy.profile import Lifetimes, ReplayProfile, with_lifetimes


def test_overrides_replace_only_what_is_given():
    profile = with_lifetimes(ReplayProfile(), Lifetimes(access_s=60, code_s=30))
    assert (profile.access_ttl_s, profile.refresh_ttl_s, profile.code_ttl_s) == (60, 5183999, 30)
    assert with_lifetimes(ReplayProfile(), Lifetimes()) == ReplayProfile()


@pytest.mark.parametrize("bad", [0, -1, 10**10, True, 1.5])
def test_bad_lifetimes_are_refused_with_the_reason(bad):
    with pytest.raises(ValueError, match="refresh lifetime must be whole seconds"):
        with_lifetimes(ReplayProfile(), Lifetimes(refresh_s=bad))
