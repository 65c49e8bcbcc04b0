-- The session API's new-session transaction is pipelined on PostgreSQL: its
-- statements go in one round trip and commit together at the end of it. A
-- send limit must still roll it all back, so the statement that counts the
-- hits enforces the limit itself: its ON CONFLICT DO UPDATE passes the new
-- count through this function, which fails the statement, and with it the
-- transaction, when the count would pass the limit (max_count > 0). SQLSTATE
-- OT429 is storage.rateLimitedCode, which storage maps to the caller's
-- refusal.
-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION otpstep_within_limit(n bigint, max_count bigint, counter_key text) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF max_count > 0 AND n > max_count THEN
        RAISE EXCEPTION 'otpstep: rate limit reached: %', counter_key USING ERRCODE = 'OT429';
    END IF;
    RETURN n;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION otpstep_within_limit(bigint, bigint, text);
