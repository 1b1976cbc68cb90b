-- A single sign-on login is bound to the browser that started it: the hash of a random value kept in
-- an HttpOnly cookie, so a callback URL (code and state) pushed into another browser is refused
-- (login CSRF: the victim would otherwise end up signed in as the attacker).
ALTER TABLE oidc_login_requests ADD COLUMN browser_hash bytea;
