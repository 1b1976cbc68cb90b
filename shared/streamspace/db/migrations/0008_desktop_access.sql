-- Opening a desktop in the browser (GET /sessions/{id}/connect -> openUrl on the session's host).
--
-- A ticket is a single-use, short-lived bearer of "this user may open this session", carried in
-- the openUrl's query. Redeeming it (on the session's own host) deletes it and creates a grant:
-- the credential of the session host's cookie, valid for that one session only. Neither is ever
-- stored in clear: the tables keep SHA-256 digests. A grant is tied to the login (token family)
-- it was opened from, so logging out, disabling the user or ending the session ends it too (the
-- forward-auth check joins all of them); a password change revokes it explicitly.
CREATE TABLE desktop_tickets (
    ticket_hash        bytea PRIMARY KEY,
    user_id            uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id          uuid REFERENCES token_families (id) ON DELETE CASCADE,
    session_namespace  text NOT NULL,
    session_name       text NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    expires_at         timestamptz NOT NULL,
    FOREIGN KEY (session_namespace, session_name) REFERENCES sessions (namespace, name) ON DELETE CASCADE
);
CREATE INDEX desktop_tickets_user ON desktop_tickets (user_id, expires_at);
CREATE INDEX desktop_tickets_session ON desktop_tickets (session_namespace, session_name);

CREATE TABLE desktop_grants (
    grant_hash         bytea PRIMARY KEY,
    user_id            uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id          uuid REFERENCES token_families (id) ON DELETE CASCADE,
    session_namespace  text NOT NULL,
    session_name       text NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    expires_at         timestamptz NOT NULL,
    revoked_at         timestamptz,
    FOREIGN KEY (session_namespace, session_name) REFERENCES sessions (namespace, name) ON DELETE CASCADE
);
CREATE INDEX desktop_grants_user ON desktop_grants (user_id, expires_at);
CREATE INDEX desktop_grants_session ON desktop_grants (session_namespace, session_name);
