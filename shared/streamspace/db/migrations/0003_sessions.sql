-- Sessions API: let heartbeats be HOT updates.
--
-- A heartbeat rewrites connections.last_heartbeat. While that column is part of an index, every
-- beat writes a new entry into every index of the table (the primary key included) and leaves
-- dead entries behind until vacuum. Without it, the update is HOT (heap-only): no index write, and
-- the page is pruned in place (fillfactor leaves the room for the new row version).
-- Live-connection counts still find a session's open connections through the index and check
-- last_heartbeat on the (few) rows themselves.
DROP INDEX IF EXISTS connections_session_live;
CREATE INDEX connections_session_open ON connections (session_namespace, session_name)
    WHERE disconnected_at IS NULL;
ALTER TABLE connections SET (fillfactor = 70);
