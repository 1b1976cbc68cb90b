-- The session list's change marks (issue 12): a user's list answers the page it answered last time
-- while nothing that page is made of changed, without Postgres reading, rendering or sorting it.
--
-- One mark per session owner. Every committed change of a row of `sessions` (insert, delete, any
-- value changed, the owner changed: both owners) and of a connection's standing in `connections`
-- (opened, closed, deleted, moved) gives the owner's mark a new value, in the same transaction as
-- the change, so a statement that reads the mark and the owner's rows sees both as of one moment.
-- A new mark is a random UUID (122 random bits): "the mark is what it was" means "no change
-- committed since", whatever order writers commit in, and that holds across a restored backup too
-- (a counter or a sequence would hand out again values a running process may still hold).
--
-- A heartbeat moves a connection's last_heartbeat only while it is live (the heartbeat statement's
-- own condition), so it never changes a live count and does not mark: what a heartbeat changes is
-- the session's last_activity (at most every ACTIVITY_RESOLUTION_SECONDS), which marks. A live
-- count also falls by time alone (a connection leaving the heartbeat window): the list keeps the
-- moment its oldest counted connection leaves the window beside the mark, and Postgres compares it
-- with now().
--
-- The triggers are deferred to commit: a writer takes its owner's mark row lock only while it
-- commits, never while it still works (a reconcile's transaction, the idle sweep's claims), so two
-- transactions that each change several owners' sessions do not hold one mark while they wait for
-- another's rows.
--
-- Mark rows are never deleted (no foreign key: a deleted user's sessions lose their owner in the
-- same transaction, and the old owner's mark is still written at commit). Every owner of a row has
-- a mark row (seeded here for the rows from before), so an owner without one has never had a
-- session: for the list that reads as the nil UUID, which gen_random_uuid() never makes.
CREATE TABLE session_list_marks (
    owner uuid PRIMARY KEY,
    mark  uuid NOT NULL
);
INSERT INTO session_list_marks (owner, mark)
SELECT owner, gen_random_uuid()
  FROM (SELECT DISTINCT user_id AS owner FROM sessions WHERE user_id IS NOT NULL) AS owners;

CREATE FUNCTION streamspace_mark_session_owners(owners uuid[]) RETURNS void LANGUAGE sql AS $$
    INSERT INTO session_list_marks (owner, mark)
    SELECT owner, gen_random_uuid()
      FROM (SELECT DISTINCT owner FROM unnest(owners) AS o(owner) WHERE owner IS NOT NULL ORDER BY owner) AS o
        ON CONFLICT (owner) DO UPDATE SET mark = EXCLUDED.mark
$$;

CREATE FUNCTION streamspace_mark_session_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM streamspace_mark_session_owners(ARRAY[NEW.user_id]);
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM streamspace_mark_session_owners(ARRAY[OLD.user_id]);
    ELSE
        PERFORM streamspace_mark_session_owners(ARRAY[OLD.user_id, NEW.user_id]);
    END IF;
    RETURN NULL;
END
$$;

-- A connection marks the owner of its session (a connection's user_id is who connected: an admin
-- may connect to someone else's session). A connection deleted with its session: the session's
-- own delete marks its owner.
CREATE FUNCTION streamspace_mark_connection_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM streamspace_mark_session_owners(ARRAY(
            SELECT user_id FROM sessions WHERE namespace = OLD.session_namespace AND name = OLD.session_name));
    END IF;
    IF TG_OP IN ('UPDATE', 'INSERT') THEN
        PERFORM streamspace_mark_session_owners(ARRAY(
            SELECT user_id FROM sessions WHERE namespace = NEW.session_namespace AND name = NEW.session_name));
    END IF;
    RETURN NULL;
END
$$;

CREATE FUNCTION streamspace_mark_every_session_owner() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE session_list_marks SET mark = gen_random_uuid();
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER sessions_list_mark_insert_delete
    AFTER INSERT OR DELETE ON sessions DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION streamspace_mark_session_change();
-- An UPDATE that rewrites a row with the same values changes nothing listed.
CREATE CONSTRAINT TRIGGER sessions_list_mark_update
    AFTER UPDATE ON sessions DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION streamspace_mark_session_change();
CREATE CONSTRAINT TRIGGER connections_list_mark_insert_delete
    AFTER INSERT OR DELETE ON connections DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION streamspace_mark_connection_change();
-- Not on last_heartbeat: a heartbeat only moves a live connection's (see above), and every beat
-- would otherwise queue a trigger.
CREATE CONSTRAINT TRIGGER connections_list_mark_update
    AFTER UPDATE OF session_namespace, session_name, disconnected_at ON connections DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN ((OLD.session_namespace, OLD.session_name, OLD.disconnected_at)
                       IS DISTINCT FROM (NEW.session_namespace, NEW.session_name, NEW.disconnected_at))
    EXECUTE FUNCTION streamspace_mark_connection_change();
-- TRUNCATE fires no row trigger: it gives every owner a new mark.
CREATE TRIGGER sessions_list_mark_truncate AFTER TRUNCATE ON sessions
    FOR EACH STATEMENT EXECUTE FUNCTION streamspace_mark_every_session_owner();
CREATE TRIGGER connections_list_mark_truncate AFTER TRUNCATE ON connections
    FOR EACH STATEMENT EXECUTE FUNCTION streamspace_mark_every_session_owner();
