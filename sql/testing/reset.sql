-- Statements used only by the test fixtures (tests/fixtures/servers.py), never by the service.

-- name: truncate_all_tables
-- Empties every table of the current schema except the migration record, so each test starts
-- from clean tables on the session's migrated database; identities restart at 1.
DO $$
DECLARE
    table_list TEXT;
BEGIN
    SELECT string_agg(format('%I.%I', schemaname, tablename), ', ')
      INTO table_list
      FROM pg_tables
     WHERE schemaname = current_schema()
       AND tablename <> 'schema_migrations';
    IF table_list IS NOT NULL THEN
        EXECUTE 'TRUNCATE ' || table_list || ' RESTART IDENTITY CASCADE';
    END IF;
END
$$;
