-- Catalog sync scheduling. `last_sync` stays the time of the last successful sync (the catalog's
-- age); `last_attempt_at` is when a sync last finished either way (the schedule's clock, so a
-- failing repository is retried once per SYNC_INTERVAL, not on every tick); `sync_requested_at`
-- marks an explicit request (API, webhook) that the next tick honours even when the event that
-- carried it was lost or arrived while another sync held the lease.
ALTER TABLE repositories
    ADD COLUMN last_attempt_at   timestamptz,
    ADD COLUMN sync_requested_at timestamptz,
    ADD COLUMN file_error_count  integer NOT NULL DEFAULT 0;

CREATE INDEX catalog_templates_category ON catalog_templates (lower(category));
