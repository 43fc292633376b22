-- Recordings a tenant uploaded in place of the router's (8 kHz mono 16-bit
-- WAV, checked before it is stored), by prompt name.
CREATE TABLE tenant_prompts (
    tenant_id   BIGINT  NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name        TEXT    NOT NULL,
    duration_ms BIGINT  NOT NULL,
    wav         BYTEA   NOT NULL,
    updated_at  BIGINT  NOT NULL,
    PRIMARY KEY (tenant_id, name)
);
