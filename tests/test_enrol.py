"""The enrolment request parser: garbage gives only our error and spends no token."""

from hypothesis import HealthCheck, given, settings, strategies as st

from geryon.ns.tree import NsError


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=400) | st.text(max_size=400).map(str.encode))
def test_garbage_join_requests_give_our_error_and_keep_the_token(home, request_bytes):
    from geryon.ns.ca import CertificateAuthority
    from geryon.ns.enrol import Enrolment
    ca = CertificateAuthority(home / "ca")
    token = ca.issue_token(["worker"], 60)
    try:
        Enrolment(ca).sign(request_bytes, token, "127.0.0.1")
    except NsError as err:
        assert "join request is malformed" in str(err) or "identity" in str(err)
    # the token was not spent by the bad request
    from geryon.ns.ca import parse_token
    import uuid
    assert ca.redeem_token(parse_token(token)[0], f"n-{uuid.uuid4().hex}") == ["worker"]
    from geryon.ns.ca import CAError
    import pytest
    with pytest.raises(CAError, match="already used"):
        ca.redeem_token(parse_token(token)[0], "other")
