-- Router core schema. Timestamps are unix milliseconds (INTEGER) so the same
-- queries run on SQLite and PostgreSQL; booleans are INTEGER 0/1 for the same reason.

CREATE TABLE tenants (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    domain          TEXT    NOT NULL UNIQUE,
    name            TEXT    NOT NULL,
    time_zone       TEXT    NOT NULL DEFAULT 'UTC',
    trunk_uri       TEXT,
    voicemail_uri   TEXT,
    hotdesk_first   INTEGER NOT NULL DEFAULT 5400,
    hotdesk_last    INTEGER NOT NULL DEFAULT 5499,
    -- a second call to someone already on a call counts as busy (1) or rings (0)
    busy_on_active_call INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL
);

CREATE TABLE hunt_groups (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id       INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    extension       TEXT    NOT NULL,
    name            TEXT    NOT NULL,
    strategy        TEXT    NOT NULL DEFAULT 'ring_all',
    member_ring_secs INTEGER NOT NULL DEFAULT 20,
    total_ring_secs INTEGER NOT NULL DEFAULT 60,
    no_answer_applies_to TEXT NOT NULL DEFAULT 'none',
    -- rotary: index of the member that starts the next call
    rotary_next     INTEGER NOT NULL DEFAULT 0,
    UNIQUE (tenant_id, extension)
);

CREATE TABLE employees (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id       INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name            TEXT    NOT NULL,
    login           TEXT    NOT NULL,
    -- HTTP login: a PHC string (argon2); SIP: digest HA1 values, never the password
    password_hash   TEXT    NOT NULL,
    ha1_md5         TEXT    NOT NULL,
    ha1_sha256      TEXT    NOT NULL,
    position        TEXT    NOT NULL DEFAULT '',
    role            TEXT    NOT NULL DEFAULT 'user',
    extension       TEXT    NOT NULL,
    email           TEXT,
    mobile          TEXT,
    voicemail_pin   TEXT,
    department_id   INTEGER REFERENCES hunt_groups(id) ON DELETE SET NULL,
    created_at      INTEGER NOT NULL,
    UNIQUE (tenant_id, extension),
    UNIQUE (tenant_id, login)
);

CREATE TABLE hunt_group_members (
    group_id        INTEGER NOT NULL REFERENCES hunt_groups(id) ON DELETE CASCADE,
    employee_id     INTEGER NOT NULL REFERENCES employees(id) ON DELETE CASCADE,
    position        INTEGER NOT NULL DEFAULT 0,
    enabled         INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (group_id, employee_id)
);

-- A SIP account a phone registers with. employee_id NULL: nobody's (hotdesk).
CREATE TABLE devices (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id       INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    username        TEXT    NOT NULL,
    name            TEXT    NOT NULL DEFAULT '',
    ha1_md5         TEXT    NOT NULL,
    ha1_sha256      TEXT    NOT NULL,
    employee_id     INTEGER REFERENCES employees(id) ON DELETE SET NULL,
    created_at      INTEGER NOT NULL,
    UNIQUE (tenant_id, username)
);

-- One row per (AOR, contact). Written before the 200 OK goes out.
CREATE TABLE registrations (
    tenant_id       INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    aor             TEXT    NOT NULL,
    contact_uri     TEXT    NOT NULL,
    expires_at      INTEGER NOT NULL,
    source          TEXT    NOT NULL,
    transport       TEXT    NOT NULL,
    user_agent      TEXT,
    instance_id     TEXT,
    call_id         TEXT    NOT NULL,
    cseq            INTEGER NOT NULL,
    q               REAL    NOT NULL DEFAULT 1.0,
    PRIMARY KEY (tenant_id, aor, contact_uri)
);
CREATE INDEX registrations_expiry ON registrations (expires_at);

CREATE TABLE calls (
    id              TEXT    PRIMARY KEY,
    tenant_id       INTEGER NOT NULL,
    sip_call_id     TEXT    NOT NULL,
    caller          TEXT    NOT NULL,
    callee          TEXT    NOT NULL,
    direction       TEXT    NOT NULL,
    started_at      INTEGER NOT NULL,
    answered_at     INTEGER,
    ended_at        INTEGER,
    answered_by     TEXT,
    outcome         TEXT    NOT NULL,
    status_code     INTEGER,
    annotations     TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX calls_tenant_started ON calls (tenant_id, started_at);

CREATE TABLE call_legs (
    call_id         TEXT    NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
    idx             INTEGER NOT NULL,
    target          TEXT    NOT NULL,
    contact         TEXT    NOT NULL,
    started_at      INTEGER NOT NULL,
    ended_at        INTEGER,
    status_code     INTEGER,
    outcome         TEXT    NOT NULL,
    PRIMARY KEY (call_id, idx)
);

CREATE TABLE settings (
    key             TEXT PRIMARY KEY,
    value           TEXT NOT NULL
);
