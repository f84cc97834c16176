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
