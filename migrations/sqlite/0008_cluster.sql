-- Several routers on one database (PostgreSQL; SQLite has one node, and the
-- same tables so that the same code runs on both).

-- Every node's heartbeat: a node whose heartbeat is older than the
-- configured dead time is dead, and its calls are reaped by the others.
CREATE TABLE cluster_nodes (
    node_id         TEXT    PRIMARY KEY,
    advertise       TEXT    NOT NULL,
    started_at      INTEGER NOT NULL,
    heartbeat_at    INTEGER NOT NULL
);

-- Who is on a call, whichever node carries it: busy, hunt groups skipping
-- busy members and longest idle read it through each node's cache.
CREATE TABLE active_calls (
    call_id         TEXT    NOT NULL,
    tenant_id       INTEGER NOT NULL,
    extension       TEXT    NOT NULL,
    node_id         TEXT    NOT NULL,
    started_at      INTEGER NOT NULL,
    PRIMARY KEY (call_id, tenant_id, extension)
);
CREATE INDEX active_calls_node ON active_calls (node_id);

-- The node that holds a binding's flow (its TCP/TLS connection).
ALTER TABLE registrations ADD COLUMN node_id TEXT NOT NULL DEFAULT '';

CREATE INDEX plugin_timers_due ON plugin_timers (fire_at);

-- Wrong PINs (hotdesk login codes) in the lock window, whichever node saw
-- them: the lock holds across the cluster.
CREATE TABLE pin_failures (
    tenant_id       INTEGER NOT NULL,
    extension       TEXT    NOT NULL,
    at              INTEGER NOT NULL
);
CREATE INDEX pin_failures_by_extension ON pin_failures (tenant_id, extension);

-- Failed HTTP logins per account in the limiter's window, whichever node
-- saw them: the account limit holds across the cluster.
CREATE TABLE login_failures (
    account         TEXT    NOT NULL,
    at              INTEGER NOT NULL
);
CREATE INDEX login_failures_by_account ON login_failures (account, at);

-- When each extension's last call ended, whichever node carried it: the
-- longest-idle hunt strategy reads it through each node's cache.
CREATE TABLE call_ends (
    tenant_id       INTEGER NOT NULL,
    extension       TEXT    NOT NULL,
    ended_at        INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, extension)
);
