-- Desktop starts (issue 18): each start of a session's desktop, timed from the request (the
-- Session's creation; for a wake, the new pod's) to Ready, with the phases Kubernetes recorded
-- (scheduled, image pulled, container started) and its kind (warm, cached, cold, unknown).
-- session-reconcile writes one row per session and pod when the session becomes Running; the
-- percentiles per template and kind are read over the latest starts. The session index keeps what
-- was expected of its start when it was launched.
CREATE TABLE session_starts (
    namespace         text             NOT NULL,
    session           text             NOT NULL,
    pod               text             NOT NULL,
    template          text             NOT NULL,
    kind              text             NOT NULL CHECK (kind IN ('warm', 'cached', 'cold', 'unknown')),
    scheduled_seconds double precision CHECK (scheduled_seconds >= 0),
    pulled_seconds    double precision CHECK (pulled_seconds >= 0),
    started_seconds   double precision CHECK (started_seconds >= 0),
    ready_seconds     double precision NOT NULL CHECK (ready_seconds >= 0),
    recorded_at       timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (namespace, session, pod)
);
CREATE INDEX session_starts_by_template ON session_starts (namespace, template, kind, recorded_at DESC);

ALTER TABLE sessions ADD COLUMN start_kind text CHECK (start_kind IN ('warm', 'cached', 'cold')),
                     ADD COLUMN expected_ready_seconds double precision;
