-- Persistent profiles (docs/s3.md), two records the storage side keeps.
--
-- profile_purges: the objects of a deleted user's profile versions, to be deleted from the store. The
-- users function holds no store credentials, so deleting a user only records them here (a trigger, so
-- every way of deleting a user does it, in the same transaction); the backup function, which does,
-- deletes them at once on the event the deletion sends, and again at each daily tick for those that
-- failed. Admins see what is pending (GET /api/v1/profiles).
CREATE TABLE profile_purges (
    object_key text PRIMARY KEY,
    user_id uuid NOT NULL,          -- the deleted user's id (no reference: the user is gone)
    username text NOT NULL,
    size_bytes bigint NOT NULL,
    requested_at timestamptz NOT NULL DEFAULT now(),
    attempts integer NOT NULL DEFAULT 0,
    last_error text
);

CREATE FUNCTION streamspace_purge_profiles_of_user() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO profile_purges (object_key, user_id, username, size_bytes)
    SELECT object_key, OLD.id, OLD.username, size_bytes FROM profiles WHERE user_id = OLD.id
    ON CONFLICT (object_key) DO NOTHING;
    RETURN OLD;
END $$;

-- BEFORE: the profile rows still exist (the foreign key's cascade removes them after this).
CREATE TRIGGER users_purge_profiles BEFORE DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION streamspace_purge_profiles_of_user();

-- profile_failures: restores and saves that failed (reported by the profile agent, or refused by the
-- platform's checks), for the user's page and the alerting metric; kept 30 days.
CREATE TABLE profile_failures (
    id bigserial PRIMARY KEY,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session text,
    operation text NOT NULL CHECK (operation IN ('restore', 'save')),
    reason text NOT NULL,
    at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX profile_failures_by_user ON profile_failures (user_id, at DESC);
CREATE INDEX profile_failures_by_time ON profile_failures (at);
