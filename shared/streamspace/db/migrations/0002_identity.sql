-- Identity and quotas: indexes for the paths the auth and users functions take.

-- Quota usage: a user's sessions that hold resources (running or hibernated).
CREATE INDEX sessions_user_holding ON sessions (user_id) WHERE state <> 'terminated';

-- Deleting or revoking a user's refresh tokens; dropping expired ones.
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id, expires_at);

-- Group names are unique regardless of case (the quota error names a group by it).
CREATE UNIQUE INDEX groups_name_lower ON groups (lower(name));

-- "What happened to this object": the audit trail of one target.
CREATE INDEX audit_log_target ON audit_log (target_type, target, at DESC);
