"""audit.record_many: a whole batch of system rows in one multi-row INSERT per 500 rows (psycopg2's
executemany would make one round trip per row), every row written as given."""

from __future__ import annotations


def test_a_batch_of_rows_is_written_whole_in_one_statement_per_500_rows(db_url):
    from streamspace import audit
    from streamspace.db import fetch_all, statement_count, transaction

    rows = [("session.hibernated", "session", f"s-{index}", {"reason": "idle", "index": index})
            for index in range(501)]
    before = statement_count()
    with transaction() as conn:
        audit.record_many(conn, rows, actor_name="idle-sweep")
        written = statement_count() - before
    assert written == 2  # 500 rows, then 1

    found = fetch_all("SELECT actor_id, actor, action, target_type, target, client_ip, details FROM audit_log"
                      " WHERE actor = 'idle-sweep' ORDER BY (details->>'index')::int")
    assert [row["target"] for row in found] == [f"s-{index}" for index in range(501)]
    assert found[0] == {"actor_id": None, "actor": "idle-sweep", "action": "session.hibernated",
                        "target_type": "session", "target": "s-0", "client_ip": "",
                        "details": {"reason": "idle", "index": 0}}
    assert found[500]["details"] == {"reason": "idle", "index": 500}


def test_an_empty_batch_writes_nothing(db_url):
    from streamspace import audit
    from streamspace.db import statement_count, transaction

    before = statement_count()
    with transaction() as conn:
        audit.record_many(conn, [], actor_name="idle-sweep")
    assert statement_count() - before == 0  # (the transaction's BEGIN and COMMIT are not counted)
