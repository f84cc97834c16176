-- Every kind of object dbops knows, written from the PostgreSQL documentation (part 1 of 3):
-- schemas, an extension, a collation, types, tables of every sort, sequences, a foreign table.
CREATE SCHEMA app;
COMMENT ON SCHEMA app IS 'the application';
GRANT USAGE ON SCHEMA app TO PUBLIC;
CREATE EXTENSION IF NOT EXISTS citext;
CREATE EXTENSION IF NOT EXISTS file_fdw;

-- CREATE COLLATION: a case-insensitive ICU collation (nondeterministic) where the server has
-- ICU (the embedded one has not), else a libc one under the same name; and a copy
DO $$
BEGIN
  CREATE COLLATION app.ci_c (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
EXCEPTION WHEN feature_not_supported THEN  -- "ICU is not supported in this build"
  CREATE COLLATION app.ci_c (provider = libc, locale = 'C');
END
$$;
CREATE COLLATION app.c_copy FROM "C";

-- CREATE DOMAIN with checks
CREATE DOMAIN app.us_postal_code AS text
  CHECK (VALUE ~ '^\d{5}$' OR VALUE ~ '^\d{5}-\d{4}$');
CREATE DOMAIN app.positive AS integer NOT NULL CONSTRAINT positive_check CHECK (VALUE > 0);
COMMENT ON DOMAIN app.positive IS 'greater than zero';

-- CREATE TYPE: enum, range (and its multirange), composite
CREATE TYPE app.mood AS ENUM ('sad', 'ok', 'happy');
CREATE TYPE app.float8_range AS RANGE (subtype = float8, subtype_diff = float8mi);
CREATE TYPE app.complex AS (r double precision, i double precision);
COMMENT ON TYPE app.mood IS 'how it feels';

-- Tables: ordinary (identity, serial, generated), unlogged, partitioned with two partitions
-- and a default, an inheritance child, a free sequence
CREATE TABLE app.customers (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name citext NOT NULL,
  nickname text COLLATE app.ci_c,
  zip app.us_postal_code,
  feeling app.mood DEFAULT 'ok',
  position app.complex,
  secret text
);
COMMENT ON TABLE app.customers IS 'people who buy';
COMMENT ON COLUMN app.customers.name IS 'as they spell it';
CREATE TABLE app.orders (
  id serial PRIMARY KEY,
  customer_id bigint NOT NULL REFERENCES app.customers (id),
  quantity app.positive,
  price numeric(10, 2) NOT NULL CHECK (price >= 0),
  total numeric(12, 2) GENERATED ALWAYS AS (quantity * price) STORED,
  validity app.float8_range
);
CREATE INDEX orders_customer ON app.orders (customer_id);
CREATE UNLOGGED TABLE app.cache (key text PRIMARY KEY, value jsonb);
CREATE TABLE app.measurements (
  city_id int NOT NULL,
  logdate date NOT NULL,
  peaktemp int,
  unitsales int
) PARTITION BY RANGE (logdate);
CREATE TABLE app.measurements_y2025 PARTITION OF app.measurements
  FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE app.measurements_y2026 PARTITION OF app.measurements
  FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TABLE app.measurements_other PARTITION OF app.measurements DEFAULT;
CREATE INDEX measurements_logdate ON app.measurements (logdate);
CREATE TABLE app.cities (name text PRIMARY KEY, population real, elevation int);
CREATE TABLE app.capitals (state char(2)) INHERITS (app.cities);
CREATE SEQUENCE app.invoice_numbers START 1000 INCREMENT 10;
CREATE TABLE public.settings (key text PRIMARY KEY, value text);

-- A foreign table through file_fdw (an extension), on a server of the application's own
CREATE SERVER files FOREIGN DATA WRAPPER file_fdw;
CREATE FOREIGN TABLE app.words (word text) SERVER files OPTIONS (filename '/dev/null', format 'text');
-- A foreign-data wrapper of the application's own (no handler: it only describes)
CREATE FOREIGN DATA WRAPPER app_dummy_fdw;

-- PostgreSQL 18: a virtual generated column; before it, a stored one
DO $$
BEGIN
  IF current_setting('server_version_num')::int >= 180000 THEN
    EXECUTE 'ALTER TABLE public.settings ADD COLUMN size int GENERATED ALWAYS AS (length(value)) VIRTUAL';
  ELSE
    EXECUTE 'ALTER TABLE public.settings ADD COLUMN size int GENERATED ALWAYS AS (length(value)) STORED';
  END IF;
END
$$;
