-- Recordings a tenant uploaded in place of the router's (8 kHz mono 16-bit
-- WAV, checked before it is stored), by prompt name.
CREATE TABLE tenant_prompts (
    tenant_id   INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name        TEXT    NOT NULL,
    duration_ms INTEGER NOT NULL,
    wav         BLOB    NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, name)
);
