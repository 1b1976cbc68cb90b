-- Live session updates, pushed: every change of a session's index row (create, state, phase, url,
-- activity, delete) is announced on the channel `session_changes` with the row's key and owner.
-- The sessions function keeps one LISTEN connection per process and wakes the open streams
-- (SSE and WebSocket) of the users concerned. NOTIFY is sent at commit, never for a rolled-back
-- change, and Postgres folds identical payloads of one transaction into one.
CREATE FUNCTION streamspace_notify_session_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed record;
BEGIN
    IF TG_OP = 'DELETE' THEN
        changed := OLD;
    ELSE
        changed := NEW;
    END IF;
    PERFORM pg_notify('session_changes', json_build_object(
        'namespace', changed.namespace, 'name', changed.name, 'userId', changed.user_id)::text);
    RETURN NULL;
END
$$;

CREATE TRIGGER sessions_notify_insert_delete
    AFTER INSERT OR DELETE ON sessions
    FOR EACH ROW EXECUTE FUNCTION streamspace_notify_session_change();
-- An UPDATE that rewrites a row with the same values announces nothing.
CREATE TRIGGER sessions_notify_update
    AFTER UPDATE ON sessions
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION streamspace_notify_session_change();
