-- One number space per tenant: an employee's extension, a device account's
-- username and a hunt group's extension may not collide. The database
-- decides (the primary key below), so two concurrent creates of the same
-- number cannot both succeed; triggers keep the table in step with the
-- three tables that claim numbers.
CREATE TABLE tenant_numbers (
    tenant_id       INTEGER NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    number          TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, number)
);

INSERT OR IGNORE INTO tenant_numbers (tenant_id, number)
    SELECT tenant_id, extension FROM employees;
INSERT OR IGNORE INTO tenant_numbers (tenant_id, number)
    SELECT tenant_id, username FROM devices;
INSERT OR IGNORE INTO tenant_numbers (tenant_id, number)
    SELECT tenant_id, extension FROM hunt_groups;

CREATE TRIGGER employees_claim_number AFTER INSERT ON employees BEGIN
    INSERT INTO tenant_numbers (tenant_id, number) VALUES (NEW.tenant_id, NEW.extension);
END;
CREATE TRIGGER employees_move_number AFTER UPDATE OF extension ON employees
WHEN OLD.extension <> NEW.extension BEGIN
    DELETE FROM tenant_numbers WHERE tenant_id = OLD.tenant_id AND number = OLD.extension;
    INSERT INTO tenant_numbers (tenant_id, number) VALUES (NEW.tenant_id, NEW.extension);
END;
CREATE TRIGGER employees_free_number AFTER DELETE ON employees BEGIN
    DELETE FROM tenant_numbers WHERE tenant_id = OLD.tenant_id AND number = OLD.extension;
END;

CREATE TRIGGER devices_claim_number AFTER INSERT ON devices BEGIN
    INSERT INTO tenant_numbers (tenant_id, number) VALUES (NEW.tenant_id, NEW.username);
END;
CREATE TRIGGER devices_move_number AFTER UPDATE OF username ON devices
WHEN OLD.username <> NEW.username BEGIN
    DELETE FROM tenant_numbers WHERE tenant_id = OLD.tenant_id AND number = OLD.username;
    INSERT INTO tenant_numbers (tenant_id, number) VALUES (NEW.tenant_id, NEW.username);
END;
CREATE TRIGGER devices_free_number AFTER DELETE ON devices BEGIN
    DELETE FROM tenant_numbers WHERE tenant_id = OLD.tenant_id AND number = OLD.username;
END;

CREATE TRIGGER hunt_groups_claim_number AFTER INSERT ON hunt_groups BEGIN
    INSERT INTO tenant_numbers (tenant_id, number) VALUES (NEW.tenant_id, NEW.extension);
END;
CREATE TRIGGER hunt_groups_move_number AFTER UPDATE OF extension ON hunt_groups
WHEN OLD.extension <> NEW.extension BEGIN
    DELETE FROM tenant_numbers WHERE tenant_id = OLD.tenant_id AND number = OLD.extension;
    INSERT INTO tenant_numbers (tenant_id, number) VALUES (NEW.tenant_id, NEW.extension);
END;
CREATE TRIGGER hunt_groups_free_number AFTER DELETE ON hunt_groups BEGIN
    DELETE FROM tenant_numbers WHERE tenant_id = OLD.tenant_id AND number = OLD.extension;
END;
