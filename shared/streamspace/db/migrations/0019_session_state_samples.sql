-- Sessions by state over time (the admin dashboard's plot, GET /api/v1/metrics/sessions).
--
-- One row per idle-sweep tick (a PingSource, every minute): how many live sessions were in each state
-- at that moment, counted from the sessions index by the sweep. Sampling the truth, rather than
-- replaying recorded transitions, stays right whatever happens in between: a restart, a restored
-- backup, a row changed by hand, a transition that was never recorded. A tick that does not run leaves
-- a gap, shown as a gap. Rows older than SESSION_HISTORY_DAYS are deleted by the same tick.
-- The states are exclusive: failed (phase Failed), hibernated, running (phase Running), pending (the
-- rest of the sessions wanted running: scheduling, pulling, starting). Terminated sessions are not
-- live and not counted.
CREATE TABLE session_state_samples (
    sampled_at  timestamptz PRIMARY KEY DEFAULT clock_timestamp(),
    pending     integer NOT NULL CHECK (pending >= 0),
    running     integer NOT NULL CHECK (running >= 0),
    hibernated  integer NOT NULL CHECK (hibernated >= 0),
    failed      integer NOT NULL CHECK (failed >= 0)
);
