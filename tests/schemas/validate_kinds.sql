-- Types: domains with checks, an enum, a range (and its multirange), a composite type; a collation.
CREATE SCHEMA app;
COMMENT ON SCHEMA app IS 'The application''s own schema';
CREATE COLLATION app.ci_c (provider = libc, locale = 'C');
CREATE DOMAIN positive_int AS integer NOT NULL DEFAULT 1 CONSTRAINT positive CHECK (VALUE > 0);
CREATE DOMAIN email AS text COLLATE app.ci_c CHECK (VALUE ~ '^[^@]+@[^@]+$');
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TYPE floatrange AS RANGE (subtype = float8, subtype_diff = float8mi);
CREATE TYPE money_pair AS (amount numeric(12,2), currency char(3));
COMMENT ON TYPE mood IS 'How it went';

-- Tables: partitioned with two partitions and a default, inheritance, unlogged, identity and free sequences.
CREATE SEQUENCE invoice_numbers START 1000 INCREMENT 5;
CREATE TABLE customers (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email email NOT NULL UNIQUE,
    name text COLLATE app.ci_c NOT NULL,
    mood mood NOT NULL DEFAULT 'ok',
    quantity positive_int,
    budget floatrange,
    wallet money_pair
);
COMMENT ON TABLE customers IS 'People who buy';
COMMENT ON COLUMN customers.email IS 'Where invoices go';
CREATE TABLE events (
    id bigserial,
    happened date NOT NULL,
    payload text,
    PRIMARY KEY (id, happened)
) PARTITION BY RANGE (happened);
CREATE TABLE events_2020s PARTITION OF events FOR VALUES FROM ('2020-01-01') TO ('2030-01-01');
CREATE TABLE events_2030s PARTITION OF events FOR VALUES FROM ('2030-01-01') TO ('2040-01-01');
CREATE TABLE events_other PARTITION OF events DEFAULT;
CREATE TABLE notes (id int PRIMARY KEY, body text);
CREATE TABLE pinned_notes (pinned_at timestamptz DEFAULT now()) INHERITS (notes);
CREATE UNLOGGED TABLE scratchpad (k text PRIMARY KEY, v text);
CREATE STATISTICS customers_mood_qty (dependencies) ON mood, quantity FROM customers;

-- Functions, a procedure, an aggregate over a SQL function, a window function, an operator, a cast.
CREATE FUNCTION add_one(i integer) RETURNS integer LANGUAGE sql IMMUTABLE STRICT AS $$ SELECT i + 1 $$;
CREATE FUNCTION app.touch() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
BEGIN
    NEW.payload := coalesce(NEW.payload, 'touched');
    RETURN NEW;
END
$$;
CREATE FUNCTION rank_of() RETURNS bigint LANGUAGE internal WINDOW IMMUTABLE AS 'window_rank';
CREATE PROCEDURE reset_scratchpad() LANGUAGE sql AS $$ DELETE FROM scratchpad $$;
CREATE FUNCTION sum_sq_step(state numeric, value numeric) RETURNS numeric
    LANGUAGE sql IMMUTABLE AS $$ SELECT state + value * value $$;
CREATE AGGREGATE sum_of_squares(numeric) (SFUNC = sum_sq_step, STYPE = numeric, INITCOND = '0');
CREATE FUNCTION money_pair_text(p money_pair) RETURNS text
    LANGUAGE sql IMMUTABLE AS $$ SELECT p.amount || ' ' || p.currency $$;
CREATE CAST (money_pair AS text) WITH FUNCTION money_pair_text(money_pair);
CREATE FUNCTION same_mood(a mood, b mood) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$ SELECT a = b $$;
CREATE OPERATOR === (LEFTARG = mood, RIGHTARG = mood, FUNCTION = same_mood, COMMUTATOR = ===);
CREATE FUNCTION int4_reverse_cmp(a integer, b integer) RETURNS integer
    LANGUAGE sql IMMUTABLE STRICT AS $$ SELECT btint4cmp(b, a) $$;
CREATE OPERATOR CLASS int4_reverse_ops FOR TYPE integer USING btree AS
    OPERATOR 1 >, OPERATOR 2 >=, OPERATOR 3 =, OPERATOR 4 <=, OPERATOR 5 <,
    FUNCTION 1 int4_reverse_cmp(integer, integer);
COMMENT ON FUNCTION add_one(integer) IS 'Adds one';
CREATE ACCESS METHOD heap_alias TYPE TABLE HANDLER heap_tableam_handler;
CREATE TABLE heap_alias_table (id int) USING heap_alias;
CREATE LANGUAGE plpgsql_alias HANDLER plpgsql_call_handler VALIDATOR plpgsql_validator;

-- Triggers, a rule, row-level security, views, a materialized view, text search, a conversion.
CREATE TRIGGER events_touch BEFORE INSERT ON events_2020s FOR EACH ROW EXECUTE FUNCTION app.touch();
CREATE TRIGGER notes_touch BEFORE UPDATE ON notes FOR EACH ROW WHEN (OLD.body IS DISTINCT FROM NEW.body)
    EXECUTE FUNCTION app.touch();
CREATE RULE scratchpad_no_delete AS ON DELETE TO scratchpad WHERE OLD.k = 'keep' DO INSTEAD NOTHING;
ALTER TABLE customers ENABLE ROW LEVEL SECURITY;
ALTER TABLE customers FORCE ROW LEVEL SECURITY;
CREATE POLICY customers_happy ON customers FOR SELECT USING (mood <> 'sad');
CREATE POLICY customers_insert ON customers AS RESTRICTIVE FOR INSERT WITH CHECK (name <> '');
CREATE VIEW happy_customers AS SELECT id, name FROM customers WHERE mood = 'happy';
CREATE MATERIALIZED VIEW events_per_day AS SELECT happened, count(*) AS n FROM events GROUP BY happened;
CREATE UNIQUE INDEX events_per_day_happened ON events_per_day (happened);
CREATE TEXT SEARCH DICTIONARY simple_english (TEMPLATE = pg_catalog.simple, STOPWORDS = english);
CREATE TEXT SEARCH CONFIGURATION app.notes_search (COPY = pg_catalog.simple);
ALTER TEXT SEARCH CONFIGURATION app.notes_search ALTER MAPPING FOR asciiword WITH simple_english;
CREATE TEXT SEARCH TEMPLATE app.plain_template (INIT = dsimple_init, LEXIZE = dsimple_lexize);
CREATE TEXT SEARCH PARSER app.plain_parser (START = prsd_start, GETTOKEN = prsd_nexttoken, END = prsd_end,
    LEXTYPES = prsd_lextype, HEADLINE = prsd_headline);
CREATE CONVERSION app.latin1_to_utf8 FOR 'LATIN1' TO 'UTF8' FROM iso8859_1_to_utf8;
COMMENT ON VIEW happy_customers IS 'Only the happy ones';
COMMENT ON TRIGGER notes_touch ON notes IS 'Keeps notes touched';

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

