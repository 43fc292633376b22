-- Seed 001: busy means "already on the phone" unless the employee chose
-- call waiting (a second call rings them during a call).
ALTER TABLE employees ADD COLUMN call_waiting INTEGER NOT NULL DEFAULT 0;
