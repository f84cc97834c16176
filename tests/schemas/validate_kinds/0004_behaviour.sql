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
