-- A login session made by an account recovery (a recovery code by email and
-- a new password) is recovered: it stays at aal1, since an emailed code
-- cannot lift it to aal2 when the same mailbox proved the recovery
-- (PassLoginSession refuses it).
-- +goose Up
ALTER TABLE login_sessions ADD COLUMN recovered boolean NOT NULL DEFAULT false;

-- +goose Down
ALTER TABLE login_sessions DROP COLUMN recovered;
