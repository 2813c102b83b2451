"""Lifetime overrides applied to a cassette's replay profile."""

import pytest

from upsproxy.cassette import load_cassette
from upsproxy.envelopes import CATALOGUE
from upsproxy.profile import Lifetimes, ReplayProfile, profile_from_cassette, with_lifetimes
from upsproxy.sandbox import default_cassette_path


def test_overrides_replace_only_what_is_given():
    profile = with_lifetimes(ReplayProfile(), Lifetimes(access_s=60, code_s=30))
    assert (profile.access_ttl_s, profile.refresh_ttl_s, profile.code_ttl_s) == (60, 5183999, 30)
    assert with_lifetimes(ReplayProfile(), Lifetimes()) == ReplayProfile()


@pytest.mark.parametrize("bad", [0, -1, 10**10, True, 1.5])
def test_bad_lifetimes_are_refused_with_the_reason(bad):
    with pytest.raises(ValueError, match="refresh lifetime must be whole seconds"):
        with_lifetimes(ReplayProfile(), Lifetimes(refresh_s=bad))


def test_the_bundled_cassette_carries_every_observed_ups_error():
    """DESIGN §3's table of real UPS errors, each recorded by the name faults use."""
    errors = profile_from_cassette(load_cassette(default_cassette_path())).errors
    observed = {name for name, spec in CATALOGUE.items() if spec.observed}
    assert observed <= set(errors)
    for name in observed:
        spec = CATALOGUE[name]
        assert (errors[name].status, errors[name].code, errors[name].message) == \
            (spec.status, spec.code, spec.message)
