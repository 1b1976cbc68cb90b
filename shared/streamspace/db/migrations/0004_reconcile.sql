-- The reconcile functions: Templates as last validated, tombstones of deleted Sessions, and the
-- indexes of the idle sweep's one query.

-- Each Template as template-reconcile (or a session reconcile that found it first) last validated
-- it: session-reconcile resolves a Session's Template here, without a Kubernetes read.
CREATE TABLE template_index (
    namespace   text NOT NULL,
    name        text NOT NULL,
    uid         text,
    generation  bigint NOT NULL DEFAULT 0,
    spec        jsonb NOT NULL,
    phase       text NOT NULL CHECK (phase IN ('Ready', 'Invalid')),
    message     text NOT NULL DEFAULT '',
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (namespace, name)
);

-- Sessions whose delete was seen: a late (redelivered or reordered) event for one must never bring
-- its objects back. Pruned by resync after a day.
CREATE TABLE session_tombstones (
    uid         text PRIMARY KEY,
    namespace   text NOT NULL,
    name        text NOT NULL,
    deleted_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX session_tombstones_deleted ON session_tombstones (deleted_at);

-- `since + seconds`: timestamptz + interval is only STABLE because of month/day units and time
-- zones; whole seconds are immutable in fact, so the sweep's deadlines can be indexed.
CREATE FUNCTION streamspace_deadline(since timestamptz, seconds integer) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT since + seconds * interval '1 second' $$;

-- The idle sweep: sessions with their own timeout, by the moment they become idle / too old.
-- (Those at the configured default use sessions_running_activity / sessions_running_created.)
CREATE INDEX sessions_idle_deadline ON sessions (streamspace_deadline(last_activity, idle_timeout_seconds))
    WHERE state = 'running' AND idle_timeout_seconds > 0;
CREATE INDEX sessions_max_deadline ON sessions (streamspace_deadline(created_at, max_duration_seconds))
    WHERE state <> 'terminated' AND max_duration_seconds > 0;

-- Template-reconcile finds the Sessions of a Template (those created with kubectl may lack the label).
CREATE INDEX sessions_template ON sessions (namespace, template);
