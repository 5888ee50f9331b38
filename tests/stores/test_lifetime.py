"""The session lifetime rule of :mod:`wxmiddleware.session`, on its own."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from wxmiddleware.session import MAX_SLIDE_GRANULARITY, deadline_after_use, quiet_until

seconds = st.floats(min_value=0, max_value=1e6, allow_nan=False)
ttls = st.integers(min_value=1, max_value=30 * 86400)


@given(idle_until=seconds, expires_in=seconds, idle_ttl=ttls, used_at=seconds)
def test_a_use_before_quiet_until_changes_nothing(
    idle_until: float, expires_in: float, idle_ttl: int, used_at: float
) -> None:
    expires_at = idle_until + expires_in
    quiet = quiet_until(idle_until, expires_at, idle_ttl)
    if used_at < quiet:
        assert deadline_after_use(idle_until, expires_at, idle_ttl, used_at) == idle_until


def test_quiet_until_is_where_the_rule_starts_to_write() -> None:
    # 7200 s idle: the rule writes once a use would move the deadline by over 60 s.
    idle_until, expires_at, idle_ttl = 10_000.0, 100_000.0, 7200
    quiet = quiet_until(idle_until, expires_at, idle_ttl)
    assert quiet == idle_until - idle_ttl + MAX_SLIDE_GRANULARITY
    assert deadline_after_use(idle_until, expires_at, idle_ttl, quiet - 0.5) == idle_until
    assert (
        deadline_after_use(idle_until, expires_at, idle_ttl, quiet + 0.5) == quiet + 0.5 + idle_ttl
    )
    # Near its end a session is quiet until its expiry, then no longer live.
    assert quiet_until(idle_until, 2_000.0, idle_ttl) == 2_000.0
    assert deadline_after_use(idle_until, 2_000.0, idle_ttl, 2_000.0) is None
