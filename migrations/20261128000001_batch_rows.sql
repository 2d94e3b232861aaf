-- The rows of a batched statement (gateway/src/batch.rs), one JSON object each. Declared
-- ROWS 1 and STRICT (which keeps it from being inlined), so the planner plans a batch as a few
-- index lookups. Read straight from jsonb_to_recordset, whose estimate is 100 rows, a batch
-- hash-joined whole tables when its plan was made while they were small, and the connection
-- kept that plan as they grew.
CREATE FUNCTION batch_rows(batch jsonb) RETURNS SETOF jsonb
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE ROWS 1
    AS $$ SELECT jsonb_array_elements(batch) $$;
