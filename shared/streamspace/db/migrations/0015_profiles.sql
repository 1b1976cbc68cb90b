-- Persistent profiles in the object store (HOME_STORAGE=s3, docs/s3.md): one row per saved version of a
-- user's home. A save is first `uploading` (a presigned URL was handed out for a new key); the platform
-- makes it `ready` and current only after checking the object's size and SHA-256 and the quota, so an
-- interrupted save never replaces the last good profile. At most one current version per user.
CREATE TABLE profiles (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    object_key text NOT NULL UNIQUE,
    status text NOT NULL CHECK (status IN ('uploading', 'ready')),
    is_current boolean NOT NULL DEFAULT false,
    size_bytes bigint NOT NULL CHECK (size_bytes >= 0),
    sha256 text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    session text,
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK (NOT is_current OR status = 'ready')
);
CREATE UNIQUE INDEX profiles_one_current ON profiles (user_id) WHERE is_current;
CREATE INDEX profiles_by_user ON profiles (user_id, created_at DESC);
