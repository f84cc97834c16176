-- Every kind of object (part 2 of 3): functions, a procedure, aggregates over SQL functions,
-- a window function, an operator, operator classes and families, casts, an access method.
CREATE FUNCTION app.add_em(integer, integer) RETURNS integer
  AS 'SELECT $1 + $2;' LANGUAGE sql IMMUTABLE;
COMMENT ON FUNCTION app.add_em(integer, integer) IS 'adds';
CREATE FUNCTION app.touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.value := coalesce(NEW.value, '{}'); RETURN NEW; END $$;
CREATE FUNCTION app.secure_lookup(k text) RETURNS text LANGUAGE sql STABLE SECURITY DEFINER
  SET search_path = pg_catalog AS 'SELECT value FROM public.settings WHERE key = k';
CREATE PROCEDURE app.insert_setting(k text, v text) LANGUAGE sql
  BEGIN ATOMIC INSERT INTO public.settings VALUES (k, v); END;

-- CREATE AGGREGATE over SQL functions: an average with an array state
CREATE FUNCTION app.float8_accum_sql(state float8[], x float8) RETURNS float8[]
  AS 'SELECT ARRAY[state[1] + x, state[2] + 1]' LANGUAGE sql IMMUTABLE STRICT;
CREATE FUNCTION app.float8_avg_sql(state float8[]) RETURNS float8
  AS 'SELECT CASE WHEN state[2] = 0 THEN NULL ELSE state[1] / state[2] END' LANGUAGE sql IMMUTABLE;
CREATE AGGREGATE app.my_avg (float8) (
  sfunc = app.float8_accum_sql, stype = float8[], finalfunc = app.float8_avg_sql, initcond = '{0,0}'
);

-- CREATE OPERATOR, from the docs' complex numbers, and a sum aggregate on the same function
CREATE FUNCTION app.complex_add(app.complex, app.complex) RETURNS app.complex
  AS 'SELECT ROW($1.r + $2.r, $1.i + $2.i)::app.complex' LANGUAGE sql IMMUTABLE;
CREATE OPERATOR app.+ (leftarg = app.complex, rightarg = app.complex, function = app.complex_add,
  commutator = OPERATOR(app.+));
CREATE AGGREGATE app.complex_sum (app.complex) (sfunc = app.complex_add, stype = app.complex, initcond = '(0,0)');
COMMENT ON AGGREGATE app.complex_sum (app.complex) IS 'sums';

-- A window function (C functions need the internal language)
CREATE FUNCTION app.my_row_number() RETURNS bigint LANGUAGE internal WINDOW IMMUTABLE AS 'window_row_number';

-- CREATE OPERATOR CLASS / FAMILY
CREATE OPERATOR CLASS app.int4_copy_ops FOR TYPE int4 USING btree AS
  OPERATOR 1 <, OPERATOR 2 <=, OPERATOR 3 =, OPERATOR 4 >=, OPERATOR 5 >, FUNCTION 1 btint4cmp(int4, int4);
CREATE OPERATOR FAMILY app.spare_family USING hash;

-- CREATE CAST: one between built-in types (a database-level object), one from an enum
CREATE CAST (int4range AS int8range) WITH INOUT AS ASSIGNMENT;
CREATE FUNCTION app.mood_rank(app.mood) RETURNS integer
  AS 'SELECT array_position(enum_range(NULL::app.mood), $1)' LANGUAGE sql IMMUTABLE;
CREATE CAST (app.mood AS integer) WITH FUNCTION app.mood_rank(app.mood);

-- CREATE ACCESS METHOD: a table access method that is the heap under another name
CREATE ACCESS METHOD app_heap TYPE TABLE HANDLER heap_tableam_handler;
