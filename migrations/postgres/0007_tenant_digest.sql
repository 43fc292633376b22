-- Digest algorithms a tenant's challenges offer, as migrations/sqlite/0007.
ALTER TABLE tenants ADD COLUMN digest_algorithms TEXT;
