-- One number space per tenant, as migrations/sqlite/0006: the primary key
-- decides races; triggers keep the table in step with the three tables that
-- claim numbers.
CREATE TABLE tenant_numbers (
    tenant_id       BIGINT  NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    number          TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, number)
);

INSERT INTO tenant_numbers (tenant_id, number)
    SELECT tenant_id, extension FROM employees ON CONFLICT DO NOTHING;
INSERT INTO tenant_numbers (tenant_id, number)
    SELECT tenant_id, username FROM devices ON CONFLICT DO NOTHING;
INSERT INTO tenant_numbers (tenant_id, number)
    SELECT tenant_id, extension FROM hunt_groups ON CONFLICT DO NOTHING;

-- TG_ARGV[0] names the column that holds the number in the triggering table.
CREATE FUNCTION tenant_number_claim() RETURNS trigger AS $$
DECLARE
    new_number TEXT;
    old_number TEXT;
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        new_number := to_jsonb(NEW) ->> TG_ARGV[0];
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        old_number := to_jsonb(OLD) ->> TG_ARGV[0];
    END IF;
    IF TG_OP = 'UPDATE' AND old_number = new_number THEN
        RETURN NEW;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        DELETE FROM tenant_numbers WHERE tenant_id = OLD.tenant_id AND number = old_number;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO tenant_numbers (tenant_id, number) VALUES (NEW.tenant_id, new_number);
        RETURN NEW;
    END IF;
    RETURN OLD;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER employees_number AFTER INSERT OR UPDATE OF extension OR DELETE ON employees
    FOR EACH ROW EXECUTE FUNCTION tenant_number_claim('extension');
CREATE TRIGGER devices_number AFTER INSERT OR UPDATE OF username OR DELETE ON devices
    FOR EACH ROW EXECUTE FUNCTION tenant_number_claim('username');
CREATE TRIGGER hunt_groups_number AFTER INSERT OR UPDATE OF extension OR DELETE ON hunt_groups
    FOR EACH ROW EXECUTE FUNCTION tenant_number_claim('extension');
