-- Extensions and their versions, foreign data, publications, an event trigger, grants.
CREATE EXTENSION hstore VERSION '1.7';
CREATE TABLE settings (id int PRIMARY KEY, attrs hstore);
CREATE FOREIGN DATA WRAPPER null_wrapper;
CREATE SERVER archive FOREIGN DATA WRAPPER null_wrapper OPTIONS (host 'archive.invalid');
CREATE FOREIGN TABLE archived_events (id bigint, happened date) SERVER archive OPTIONS (source 'events');
CREATE PUBLICATION customer_changes FOR TABLE customers, notes WITH (publish = 'insert, update');
CREATE FUNCTION app.no_drops() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN END $$;
CREATE EVENT TRIGGER no_drops ON sql_drop EXECUTE FUNCTION app.no_drops();
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'dbops_t_reader') THEN
        CREATE ROLE dbops_t_reader NOLOGIN;
    END IF;
END
$$;
GRANT USAGE ON SCHEMA app TO dbops_t_reader;
GRANT SELECT ON customers, happy_customers TO dbops_t_reader;
GRANT SELECT (id, body) ON notes TO dbops_t_reader;
GRANT EXECUTE ON FUNCTION add_one(integer) TO dbops_t_reader;
REVOKE EXECUTE ON FUNCTION app.touch() FROM PUBLIC;
ALTER DEFAULT PRIVILEGES IN SCHEMA app GRANT SELECT ON TABLES TO dbops_t_reader;
