-- Disabling a staff account ends its sessions in the same transaction, whichever way it is
-- disabled (`drawbridge staff disable` or by hand), so enabling it again revives none of them.
CREATE FUNCTION end_sessions_of_disabled_staff() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE staff_sessions SET ended_at = now() WHERE staff_id = NEW.id AND ended_at IS NULL;
    RETURN NULL;
END $$;
CREATE TRIGGER staff_disabled_ends_sessions AFTER UPDATE OF disabled_at ON staff
    FOR EACH ROW WHEN (NEW.disabled_at IS NOT NULL)
    EXECUTE FUNCTION end_sessions_of_disabled_staff();

-- Accounts disabled before this migration.
UPDATE staff_sessions t SET ended_at = now()
FROM staff s
WHERE s.id = t.staff_id AND s.disabled_at IS NOT NULL AND t.ended_at IS NULL;
