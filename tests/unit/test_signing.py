"""Signed claims: round trip, expiry, tampering, and one purpose never passing for another."""

from __future__ import annotations

import pytest

from conveyor.errors import Unauthenticated
from conveyor.signing import Signer


def test_claims_round_trip_until_they_expire() -> None:
    signer = Signer(b"k" * 32, "cvjob")
    token = signer.sign({"job": "j1"}, 60, now=1000.0)
    assert signer.verify(token, now=1059.0)["job"] == "j1"
    with pytest.raises(Unauthenticated, match="expired"):
        signer.verify(token, now=1060.0)


def test_another_secret_or_purpose_or_a_changed_payload_is_refused() -> None:
    token = Signer(b"k" * 32, "cvjob").sign({"job": "j1"}, 60)
    with pytest.raises(Unauthenticated, match="bad signature"):
        Signer(b"z" * 32, "cvjob").verify(token)
    with pytest.raises(Unauthenticated, match="not a cvsess token"):
        Signer(b"k" * 32, "cvsess").verify(token)
    purpose, _payload, mac = token.split(".")
    forged = Signer(b"k" * 32, "cvjob").sign({"job": "j2"}, 60).split(".")[1]
    with pytest.raises(Unauthenticated, match="bad signature"):
        Signer(b"k" * 32, "cvjob").verify(f"{purpose}.{forged}.{mac}")
    with pytest.raises(Unauthenticated):
        Signer(b"k" * 32, "cvjob").verify("garbage")
