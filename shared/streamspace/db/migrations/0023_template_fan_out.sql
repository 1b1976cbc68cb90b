-- A Template change reaches its Sessions through template-reconcile's fan-out, after the index row
-- is written (Sessions resolve their Template from it). A fan-out that failed part-way left a row
-- that looked up to date, so the event's retry found nothing to do and the Sessions it missed
-- waited for the periodic resync. `sessions_due`: the Sessions have not all been reconciled against
-- what the row holds; the fan-out that reaches every one of them clears it.
ALTER TABLE template_index ADD COLUMN sessions_due boolean NOT NULL DEFAULT false;
