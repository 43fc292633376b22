-- Bearer tokens of employees: sessions from a login (expiring) and API
-- tokens for automation (until revoked). Only a SHA-256 of the token is
-- kept; the token itself is shown once.
CREATE TABLE api_tokens (
    id              INTEGER PRIMARY KEY,
    token_hash      TEXT    NOT NULL UNIQUE,
    tenant_id       INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    employee_id     INTEGER NOT NULL REFERENCES employees(id) ON DELETE CASCADE,
    kind            TEXT    NOT NULL,
    label           TEXT    NOT NULL DEFAULT '',
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER,
    revoked_at      INTEGER
);

-- Who changed what, when: every accepted write of the admin API.
CREATE TABLE audit_log (
    id              INTEGER PRIMARY KEY,
    tenant_id       INTEGER,
    actor           TEXT    NOT NULL,
    method          TEXT    NOT NULL,
    path            TEXT    NOT NULL,
    status          INTEGER NOT NULL,
    at              INTEGER NOT NULL
);
CREATE INDEX audit_log_by_tenant ON audit_log (tenant_id, at);

-- Seed 002's role settings: whether department heads and users see their
-- department's history or the whole company's.
ALTER TABLE tenants ADD COLUMN head_history_scope TEXT NOT NULL DEFAULT 'department';
ALTER TABLE tenants ADD COLUMN user_history_scope TEXT NOT NULL DEFAULT 'department';
