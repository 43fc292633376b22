-- Plugin runtime: components, per-tenant chains, settings, state.

CREATE TABLE plugins (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    name            TEXT    NOT NULL,
    version         INTEGER NOT NULL,
    sha256          TEXT    NOT NULL,
    wasm            BLOB    NOT NULL,
    -- NULL: built in (shipped with the router), else the uploading tenant
    owner_tenant_id INTEGER REFERENCES tenants(id) ON DELETE CASCADE,
    created_at      INTEGER NOT NULL,
    UNIQUE (name, version, owner_tenant_id)
);

CREATE TABLE tenant_plugins (
    tenant_id       INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    plugin_name     TEXT    NOT NULL,
    position        INTEGER NOT NULL,
    enabled         INTEGER NOT NULL DEFAULT 1,
    disabled_reason TEXT,
    PRIMARY KEY (tenant_id, plugin_name)
);

CREATE TABLE plugin_settings (
    tenant_id       INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    plugin_name     TEXT    NOT NULL,
    scope           TEXT    NOT NULL,
    json            TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, plugin_name, scope)
);

CREATE TABLE plugin_kv (
    tenant_id       INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    plugin_name     TEXT    NOT NULL,
    key             TEXT    NOT NULL,
    value           TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, plugin_name, key)
);

CREATE TABLE plugin_timers (
    id              INTEGER PRIMARY KEY,
    tenant_id       INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    plugin_name     TEXT    NOT NULL,
    fire_at         INTEGER NOT NULL,
    payload         TEXT    NOT NULL
);

-- Availability of employees, set by plugins or over HTTP, with its history.
CREATE TABLE employee_status (
    tenant_id       INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    extension       TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    cause           TEXT    NOT NULL,
    changed_at      INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, extension)
);

CREATE TABLE status_changes (
    tenant_id       INTEGER NOT NULL,
    extension       TEXT    NOT NULL,
    what            TEXT    NOT NULL,
    cause           TEXT    NOT NULL,
    changed_at      INTEGER NOT NULL
);
