"""SQL stores: a login's inline purge batch must never fail the login.

``SQLOperations.save`` runs one batch of expired rows first, at most once per
``PURGE_INTERVAL`` per process, and its docstring says "its failure is only logged" (it is
wrapped in ``except StoreUnavailable``). Since e2d462e the batch's ``DELETE`` runs again on a
deadlock, up to ``DEADLOCK_ATTEMPTS`` times; when the last attempt loses too, the
``Deadlock`` (a ``Conflict``, not a ``StoreUnavailable``) escapes that ``except`` and the
login answers 503 before its session is even inserted.

Driven as the store's runner drives it (``Steps``), against the real databases
(tests/sql_support.py), the way tests/stores/test_sql.py drives the rekey deadlock.
"""

from __future__ import annotations

import pytest

from tests.sql_support import sql_store
from tests.stores.support import IDLE, SCOPE, make_session
from wxmiddleware.session import new_token

pytest.importorskip("sqlalchemy")


@pytest.mark.parametrize("dialect", ["postgresql", "mysql"])
def test_a_login_whose_inline_purge_keeps_losing_deadlocks_still_saves(dialect: str) -> None:
    from wxmiddleware.stores._sql_steps import DEADLOCK_ATTEMPTS, Deadlock, Steps

    with sql_store(dialect) as store:
        operations = store._operations
        operations._next_purge = 0.0  # this login runs the inline purge batch first
        steps = Steps(operations.save(new_token(), make_session(), IDLE, SCOPE), "save", dialect)
        next(steps)  # the SELECT of expired session keys
        steps.reply = [("an-expired-key",)]
        delete = next(steps)
        assert str(delete.statement).startswith("DELETE")
        for _ in range(DEADLOCK_ATTEMPTS - 1):
            steps._error = Deadlock("OperationalError")  # what Steps.answering records
            assert next(steps) is delete  # run again
        steps._error = Deadlock("OperationalError")
        # The purge gave up: the login goes on to its INSERT (the failure is only logged).
        following = next(steps)
        assert following.statement is operations.t.insert_session
