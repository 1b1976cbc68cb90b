-- Single sign-on with OpenID Connect, and two-factor login (TOTP) for local accounts.

-- An authorization request in flight: written by /auth/oidc/login, taken (deleted) once by the
-- callback. Only hashes of the state travel into the database; the PKCE verifier never leaves it.
CREATE TABLE oidc_login_requests (
    state_hash     bytea PRIMARY KEY,
    nonce          text NOT NULL,
    code_verifier  text NOT NULL,
    redirect_uri   text NOT NULL,
    return_to      text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL
);
CREATE INDEX oidc_login_requests_expiry ON oidc_login_requests (expires_at);

-- The callback's one-time, short-lived code that the portal exchanges for a normal login.
CREATE TABLE oidc_handoffs (
    code_hash   bytea PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at  timestamptz NOT NULL
);

-- Which provider account is which StreamSpace user: (issuer, sub), never the username or email.
CREATE TABLE oidc_identities (
    issuer      text NOT NULL,
    subject     text NOT NULL,
    user_id     uuid NOT NULL UNIQUE REFERENCES users (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (issuer, subject)
);

-- Admin-edited: a value of the groups claim -> a StreamSpace group and/or a role.
CREATE TABLE oidc_claim_mappings (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    claim_value  text NOT NULL CHECK (claim_value <> ''),
    group_id     uuid REFERENCES groups (id) ON DELETE CASCADE,
    role         text CHECK (role IN ('operator', 'admin')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (group_id IS NOT NULL OR role IS NOT NULL)
);
CREATE UNIQUE INDEX oidc_claim_mappings_unique
    ON oidc_claim_mappings (claim_value, coalesce(group_id::text, ''), coalesce(role, ''));

-- TOTP (RFC 6238): the secret encrypted with STREAMSPACE_SECRET_KEY; confirmed once a first code
-- was verified; last_step refuses a code (or an earlier one) used again.
CREATE TABLE totp_credentials (
    user_id       uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    secret        bytea NOT NULL,
    confirmed_at  timestamptz,
    last_step     bigint,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- Ten single-use recovery codes per user, stored as SHA-256 (each holds 80 random bits).
CREATE TABLE totp_recovery_codes (
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  bytea NOT NULL,
    used_at    timestamptz,
    PRIMARY KEY (user_id, code_hash)
);

-- The first step of a two-step login: a token good only for the second step, a few tries, minutes.
CREATE TABLE login_challenges (
    token_hash  bytea PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    attempts    integer NOT NULL DEFAULT 0,
    expires_at  timestamptz NOT NULL
);
