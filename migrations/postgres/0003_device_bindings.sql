-- Hotdesking: which employee a device account is bound to (logged in at).
CREATE TABLE device_bindings (
    tenant_id       BIGINT  NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    device          TEXT    NOT NULL,
    extension       TEXT    NOT NULL,
    bound_at        BIGINT  NOT NULL,
    PRIMARY KEY (tenant_id, device)
);
