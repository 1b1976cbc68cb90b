-- Backups of the database and the cluster's Templates and Sessions in the object store (docs/s3.md).
-- One row per run: what the admin list shows. The objects live under <S3_PREFIX>backups/<id>/; the
-- manifest written last (manifest.json) records each object's size and SHA-256, so a restore needs
-- only the store. Only one run at a time: the run holds an advisory lock (a lease that ends with its
-- connection), not a row, so a crashed run never blocks the next one.
CREATE TABLE backups (
    id text PRIMARY KEY,
    status text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    trigger text NOT NULL CHECK (trigger IN ('schedule', 'api', 'cli')),
    requested_by text,
    started_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    manifest_key text NOT NULL,
    size_bytes bigint,
    sha256 text,
    templates integer,
    sessions integer,
    error text
);
CREATE INDEX backups_started_at ON backups (started_at DESC);
