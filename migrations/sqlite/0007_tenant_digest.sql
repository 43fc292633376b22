-- Digest algorithms a tenant's challenges offer, most preferred first, as a
-- comma list (`SHA-256,MD5`); NULL: the router's `registrar.digest_algorithms`.
ALTER TABLE tenants ADD COLUMN digest_algorithms TEXT;
