-- Every kind of object (part 3 of 3): views, a materialized view, a trigger, a rule, row
-- security, statistics, text search, a conversion, an event trigger, a publication, a large
-- object, default privileges, grants and comments.
CREATE VIEW app.happy_customers AS SELECT id, name FROM app.customers WHERE feeling = 'happy';
COMMENT ON VIEW app.happy_customers IS 'the happy ones';
CREATE MATERIALIZED VIEW app.sales_by_city AS
  SELECT city_id, sum(unitsales) AS units FROM app.measurements GROUP BY city_id;
CREATE UNIQUE INDEX sales_by_city_key ON app.sales_by_city (city_id);

CREATE TRIGGER cache_touch BEFORE INSERT OR UPDATE ON app.cache FOR EACH ROW EXECUTE FUNCTION app.touch();
CREATE TRIGGER measurements_touch BEFORE INSERT ON app.measurements FOR EACH ROW
  WHEN (NEW.unitsales < 0) EXECUTE FUNCTION suppress_redundant_updates_trigger();
ALTER TABLE app.measurements DISABLE TRIGGER measurements_touch;

-- CREATE RULE: inserts into the view go to the table
CREATE RULE happy_insert AS ON INSERT TO app.happy_customers
  DO INSTEAD INSERT INTO app.customers (name, feeling) VALUES (NEW.name, 'happy');

-- Row security
ALTER TABLE app.orders ENABLE ROW LEVEL SECURITY;
ALTER TABLE app.orders FORCE ROW LEVEL SECURITY;
CREATE POLICY own_orders ON app.orders USING (current_user = 'postgres' OR quantity > 0);
CREATE POLICY no_free ON app.orders AS RESTRICTIVE FOR INSERT WITH CHECK (price > 0);

-- CREATE STATISTICS
CREATE STATISTICS app.orders_stats (dependencies, ndistinct) ON customer_id, quantity FROM app.orders;

-- Text search: a template and a parser (built from the built-in C functions), a dictionary,
-- a configuration
CREATE TEXT SEARCH TEMPLATE app.simple_copy (init = dsimple_init, lexize = dsimple_lexize);
CREATE TEXT SEARCH PARSER app.default_copy (start = prsd_start, gettoken = prsd_nexttoken,
  end = prsd_end, lextypes = prsd_lextype, headline = prsd_headline);
CREATE TEXT SEARCH DICTIONARY app.english_simple (template = app.simple_copy, stopwords = english);
CREATE TEXT SEARCH CONFIGURATION app.english_cfg (parser = app.default_copy);
ALTER TEXT SEARCH CONFIGURATION app.english_cfg ADD MAPPING FOR asciiword, word WITH app.english_simple;
COMMENT ON TEXT SEARCH CONFIGURATION app.english_cfg IS 'simple English';

-- CREATE CONVERSION
CREATE CONVERSION app.latin1_to_utf8 FOR 'LATIN1' TO 'UTF8' FROM iso8859_1_to_utf8;

-- An event trigger
CREATE FUNCTION app.note_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN RAISE DEBUG 'ddl: %', tg_tag; END $$;
CREATE EVENT TRIGGER note_ddl ON ddl_command_end EXECUTE FUNCTION app.note_ddl();

-- A publication
CREATE PUBLICATION app_orders FOR TABLE app.orders, app.customers (id, name);

-- A large object, with a fixed oid so that a fresh migrate makes the same one
SELECT lo_from_bytea(424242, convert_to('a large object', 'UTF8'));
COMMENT ON LARGE OBJECT 424242 IS 'the big one';

-- Grants and default privileges
GRANT SELECT ON app.customers TO PUBLIC;
GRANT SELECT (id, price), UPDATE (quantity) ON app.orders TO PUBLIC;
GRANT EXECUTE ON FUNCTION app.add_em(integer, integer) TO PUBLIC;
REVOKE EXECUTE ON FUNCTION app.secure_lookup(text) FROM PUBLIC;
GRANT USAGE ON SEQUENCE app.invoice_numbers TO PUBLIC;
GRANT USAGE ON TYPE app.mood TO PUBLIC;
ALTER DEFAULT PRIVILEGES IN SCHEMA app GRANT SELECT ON TABLES TO PUBLIC;
ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
