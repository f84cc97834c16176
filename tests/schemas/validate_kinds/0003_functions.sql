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
