-- PostgreSQL's 00003 adds otpstep_within_limit, which only its pipelined
-- new-session transaction uses; SQLite checks send limits in Go inside the
-- transaction. This keeps the two schemas at the same version.
-- +goose Up
SELECT 1;

-- +goose Down
SELECT 1;
