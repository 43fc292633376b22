-- Digest algorithms a device account's challenges offer, most preferred
-- first, as a comma list (`SHA-256,MD5`); NULL: the tenant's choice.
ALTER TABLE devices ADD COLUMN digest_algorithms TEXT;
