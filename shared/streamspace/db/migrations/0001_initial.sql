-- StreamSpace initial schema. Kubernetes holds desired session state; Postgres holds everything
-- else, plus an index of sessions kept in step with the Session objects.

CREATE TABLE users (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    username       text NOT NULL UNIQUE CHECK (username ~ '^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$'),
    email          text,
    full_name      text NOT NULL DEFAULT '',
    role           text NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'operator', 'admin')),
    provider       text NOT NULL DEFAULT 'local',
    active         boolean NOT NULL DEFAULT true,
    -- NULL only for users of an external provider; local users always have a hash.
    password_hash  text CHECK (password_hash IS NULL OR password_hash <> ''),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    last_login     timestamptz
);
CREATE UNIQUE INDEX users_email_unique ON users (lower(email)) WHERE email IS NOT NULL AND email <> '';

CREATE TABLE groups (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name          text NOT NULL UNIQUE,
    display_name  text NOT NULL DEFAULT '',
    description   text NOT NULL DEFAULT '',
    type          text NOT NULL DEFAULT 'team',
    parent_id     uuid REFERENCES groups (id) ON DELETE SET NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (parent_id IS NULL OR parent_id <> id)
);

CREATE TABLE group_members (
    group_id    uuid NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role        text NOT NULL DEFAULT 'member' CHECK (role IN ('member', 'admin', 'owner')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user ON group_members (user_id);

-- Quota rows exist only where an admin set limits; absent rows mean the documented defaults.
-- CPU in millicores, memory and storage in bytes (exact integers, no float rounding).
CREATE TABLE user_quotas (
    user_id            uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    max_sessions       integer CHECK (max_sessions >= 0),
    max_cpu_millis     bigint CHECK (max_cpu_millis >= 0),
    max_memory_bytes   bigint CHECK (max_memory_bytes >= 0),
    max_storage_bytes  bigint CHECK (max_storage_bytes >= 0),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE group_quotas (
    group_id           uuid PRIMARY KEY REFERENCES groups (id) ON DELETE CASCADE,
    max_sessions       integer CHECK (max_sessions >= 0),
    max_cpu_millis     bigint CHECK (max_cpu_millis >= 0),
    max_memory_bytes   bigint CHECK (max_memory_bytes >= 0),
    max_storage_bytes  bigint CHECK (max_storage_bytes >= 0),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);

-- A login starts a token family; every refresh rotates within it. Revoking the family (logout,
-- or reuse of a rotated refresh token) also invalidates the access tokens that carry its id.
CREATE TABLE token_families (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at      timestamptz NOT NULL DEFAULT now(),
    revoked_at      timestamptz,
    revoked_reason  text
);
CREATE INDEX token_families_user ON token_families (user_id);

CREATE TABLE refresh_tokens (
    token_hash  bytea PRIMARY KEY,              -- SHA-256 of the opaque token; the token itself is never stored
    family_id   uuid NOT NULL REFERENCES token_families (id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    issued_at   timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    rotated_at  timestamptz                      -- set when exchanged; presenting it again is reuse
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

-- Login attempts, shared by every function instance (rate limiting per username and per address).
CREATE TABLE login_attempts (
    id            bigserial PRIMARY KEY,
    username      text NOT NULL,
    client_ip     text NOT NULL,
    succeeded     boolean NOT NULL,
    attempted_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_attempts_username ON login_attempts (username, attempted_at);
CREATE INDEX login_attempts_client ON login_attempts (client_ip, attempted_at);

-- One row per Session object: listing and quota never call Kubernetes.
CREATE TABLE sessions (
    namespace              text NOT NULL,
    name                   text NOT NULL,
    user_id                uuid REFERENCES users (id) ON DELETE SET NULL,
    username               text NOT NULL,
    template               text NOT NULL,
    state                  text NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'hibernated', 'terminated')),
    phase                  text NOT NULL DEFAULT 'Pending',
    url                    text,
    pod_name               text,
    message                text,
    cpu_millis             bigint NOT NULL DEFAULT 0,
    memory_bytes           bigint NOT NULL DEFAULT 0,
    storage_bytes          bigint NOT NULL DEFAULT 0,
    persistent_home        boolean NOT NULL DEFAULT true,
    idle_timeout_seconds   integer,             -- NULL: the configured default; 0: never
    max_duration_seconds   integer,             -- NULL: the configured default; 0: unlimited
    tags                   text[] NOT NULL DEFAULT '{}',
    uid                    text,                -- the Session object's metadata.uid once known
    observed_generation    bigint,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    last_activity          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (namespace, name)
);
CREATE INDEX sessions_user ON sessions (user_id, created_at DESC);
CREATE INDEX sessions_username ON sessions (username, created_at DESC);
-- The idle sweep's one query: running sessions ordered by last activity.
CREATE INDEX sessions_running_activity ON sessions (last_activity) WHERE state = 'running';
CREATE INDEX sessions_running_created ON sessions (created_at) WHERE state <> 'terminated';

CREATE TABLE connections (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    session_namespace  text NOT NULL,
    session_name       text NOT NULL,
    user_id            uuid REFERENCES users (id) ON DELETE SET NULL,
    username           text NOT NULL,
    client_ip          text NOT NULL DEFAULT '',
    user_agent         text NOT NULL DEFAULT '',
    connected_at       timestamptz NOT NULL DEFAULT now(),
    last_heartbeat     timestamptz NOT NULL DEFAULT now(),
    disconnected_at    timestamptz,
    FOREIGN KEY (session_namespace, session_name) REFERENCES sessions (namespace, name) ON DELETE CASCADE
);
-- Live connections are those with a recent heartbeat and no disconnect: computed at read time.
CREATE INDEX connections_session_live ON connections (session_namespace, session_name, last_heartbeat)
    WHERE disconnected_at IS NULL;

CREATE TABLE repositories (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name              text NOT NULL UNIQUE,
    url               text NOT NULL,
    url_normalized    text NOT NULL,
    branch            text NOT NULL DEFAULT 'main',
    auth_type         text NOT NULL DEFAULT 'none' CHECK (auth_type IN ('none', 'token', 'basic', 'ssh')),
    auth_secret       bytea,                    -- encrypted (Fernet); never returned
    status            text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'syncing', 'synced', 'failed')),
    error_message     text NOT NULL DEFAULT '',
    file_errors       jsonb NOT NULL DEFAULT '[]',
    last_sync         timestamptz,
    last_commit       text,
    template_count    integer NOT NULL DEFAULT 0,
    -- A sync holds a lease; an expired lease (crashed or timed-out sync) may be taken over.
    lease_owner       text,
    lease_expires_at  timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (url_normalized, branch)
);

-- array_to_string is only STABLE; tags are plain text, so joining them is immutable in fact.
CREATE FUNCTION streamspace_join_tags(tags text[]) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT array_to_string(tags, ' ') $$;

CREATE TABLE catalog_templates (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    repository_id  uuid NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    name           text NOT NULL,
    display_name   text NOT NULL DEFAULT '',
    description    text NOT NULL DEFAULT '',
    category       text NOT NULL DEFAULT '',
    app_type       text NOT NULL DEFAULT 'desktop',
    icon           text NOT NULL DEFAULT '',
    tags           text[] NOT NULL DEFAULT '{}',
    manifest       jsonb NOT NULL,
    source_path    text NOT NULL DEFAULT '',
    install_count  integer NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    search         tsvector GENERATED ALWAYS AS (
        to_tsvector('simple', name || ' ' || display_name || ' ' || description || ' ' || streamspace_join_tags(tags))
    ) STORED,
    UNIQUE (repository_id, name)
);
CREATE INDEX catalog_templates_search ON catalog_templates USING gin (search);
CREATE INDEX catalog_templates_tags ON catalog_templates USING gin (tags);
CREATE INDEX catalog_templates_order ON catalog_templates (install_count DESC, name);

CREATE TABLE configuration (
    key         text PRIMARY KEY,
    value       jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  text
);
INSERT INTO configuration (key, value) VALUES
    ('ingress.domain', '"streamspace.local"'),
    ('ingress.class', '"traefik"'),
    ('storage.className', '""'),
    ('storage.defaultSize', '"50Gi"'),
    ('session.defaultIdleTimeout', '"30m"'),
    ('session.defaultMaxDuration', '"8h"'),
    ('session.enableAutoHibernation', 'true'),
    ('resources.defaultMemory', '"2Gi"'),
    ('resources.defaultCPU', '"1000m"');

CREATE TABLE audit_log (
    id           bigserial PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT now(),
    actor_id     uuid,
    actor        text NOT NULL DEFAULT '',
    action       text NOT NULL,
    target_type  text NOT NULL DEFAULT '',
    target       text NOT NULL DEFAULT '',
    client_ip    text NOT NULL DEFAULT '',
    details      jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_at ON audit_log (at DESC);
CREATE INDEX audit_log_action ON audit_log (action, at DESC);
