-- Forced login (seed 004), as migrations/sqlite/0004.
ALTER TABLE employees ADD COLUMN forced_login BIGINT NOT NULL DEFAULT 0;
