-- The sessions package's published reads, for the packages it builds on: quota usage, a user's
-- holding sessions, the session a desktop ticket or grant opens. The sessions API calls those
-- packages (quotas, users, desktop access), so they cannot call the sessions store without an import
-- cycle (tests/test_architecture.py); they read these views, and only the sessions store speaks SQL
-- to the `sessions` table, its columns and its writes. Simple views: the planner inlines them into
-- the statements that read them, so each keeps its plan and its single round trip (forward-auth).

-- What a session holds while it runs or hibernates (quotas sum it; a user holding any cannot be deleted).
CREATE VIEW session_holdings AS
SELECT namespace, name, user_id, cpu_millis, memory_bytes, storage_bytes
  FROM sessions
 WHERE state IN ('running', 'hibernated');

-- Whose a session is and what it wants (a desktop ticket or grant opens only a holding session of its owner).
CREATE VIEW session_owners AS
SELECT namespace, name, user_id, username, state
  FROM sessions;
