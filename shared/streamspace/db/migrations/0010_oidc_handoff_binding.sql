-- The one-time code the SSO callback hands over is redeemable only by the browser that did the login
-- (the same binding cookie as the login request), so a link carrying someone else's code signs
-- nobody in (login CSRF).
ALTER TABLE oidc_handoffs ADD COLUMN browser_hash bytea;
