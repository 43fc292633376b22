-- Per-tenant plugin limits set by the platform operator; NULL: the
-- operator's [plugins] defaults.
ALTER TABLE tenants ADD COLUMN plugin_deadline_ms BIGINT;
ALTER TABLE tenants ADD COLUMN plugin_memory_mib BIGINT;
ALTER TABLE tenants ADD COLUMN plugin_upload_kib BIGINT;
