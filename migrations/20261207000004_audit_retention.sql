-- The staff audit log is purged once its retention (`retention.audit_entries_days`) is up, but
-- no entry younger than a year can be deleted, whatever the configuration says; entries are
-- still never changed.
DROP TRIGGER staff_actions_append_only ON staff_actions;
CREATE TRIGGER staff_actions_append_only BEFORE UPDATE OR TRUNCATE ON staff_actions
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change();

CREATE FUNCTION refuse_young_audit_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.at > now() - interval '365 days' THEN
        RAISE EXCEPTION 'rows of % are kept for 365 days at least', TG_TABLE_NAME
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN OLD;
END $$;
CREATE TRIGGER staff_actions_kept_a_year BEFORE DELETE ON staff_actions
    FOR EACH ROW EXECUTE FUNCTION refuse_young_audit_delete();
