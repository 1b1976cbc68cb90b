-- The session body shows requests as well as limits (issue 17). The index held only the limits
-- (what quotas count); the requests are kept beside them so the list, which is served from the
-- index alone, can show both. NULL on rows written before this migration: the next reconcile of
-- the Session (any event, or the periodic resync) fills them from the object.
ALTER TABLE sessions
    ADD COLUMN cpu_request_millis   bigint CHECK (cpu_request_millis >= 0),
    ADD COLUMN memory_request_bytes bigint CHECK (memory_request_bytes >= 0);
