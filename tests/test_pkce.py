from upsproxy.pkce import s256_challenge, verifier_is_well_formed, verifier_matches

RFC_VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
RFC_CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_s256_matches_rfc7636_appendix_b():
    assert s256_challenge(RFC_VERIFIER) == RFC_CHALLENGE
    assert verifier_matches(RFC_VERIFIER, RFC_CHALLENGE)


def test_verifier_length_bounds_are_exact():
    assert not verifier_is_well_formed("a" * 42)
    assert verifier_is_well_formed("a" * 43)
    assert verifier_is_well_formed("a" * 128)
    assert not verifier_is_well_formed("a" * 129)


def test_verifier_alphabet_is_unreserved_only():
    assert verifier_is_well_formed("A-._~" + "z" * 40)
    for bad in "+/= %\n":
        assert not verifier_is_well_formed(bad + "a" * 50)


def test_plain_method_is_not_accepted():
    # A client using "plain" sends challenge == verifier; UPS only does S256.
    assert not verifier_matches(RFC_VERIFIER, RFC_VERIFIER)


def test_nothing_is_repaired():
    assert not verifier_matches(RFC_VERIFIER + "\n", RFC_CHALLENGE)
    assert not verifier_matches(RFC_VERIFIER, RFC_CHALLENGE + "=")
