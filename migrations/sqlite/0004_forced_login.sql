-- Forced login (seed 004): only users with a login code (voicemail PIN) and
-- forced login are logged out by the idle timeout and take a status change
-- when they miss a hunt group call.
ALTER TABLE employees ADD COLUMN forced_login INTEGER NOT NULL DEFAULT 0;
