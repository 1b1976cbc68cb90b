-- The index row records which version of the Session's spec it reflects: `generation` is the
-- metadata.generation of the newest spec written into the row, by the API (create, change, connect,
-- idle sweep: the generation the API server answered) or by a reconcile (the object it reconciled).
-- A write carrying an older generation of the same Session (uid) is refused, so a late event or a
-- slow reconcile of a copy from before a change (terminate) can never move the row, and with it
-- forward-auth, back to the older spec. NULL on rows written before this migration: the next
-- write records it.
ALTER TABLE sessions ADD COLUMN generation bigint CHECK (generation > 0);
