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
