-- totp_credentials: a user's TOTP secrets (RFC 6238), of two kinds: a
-- device TOTP, made by PACE's CreateTOTP for the device that names it
-- (device_id, the JSON:API id it sent; one per user and device), and an
-- authenticator TOTP, enrolled at /settings/totp and usable once confirmed
-- with a first code (confirmed_at). sealed_secret is AEAD-sealed by the
-- provider and bound to id, user and kind. last_used_step is the RFC 6238
-- time step of the last code accepted: a code of that step or an earlier one
-- is refused (one conditional UPDATE, so across instances too).
-- +goose Up
CREATE TABLE totp_credentials (
    id             text PRIMARY KEY,
    user_id        text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind           text NOT NULL CHECK (kind IN ('device', 'authenticator')),
    device_id      text NOT NULL DEFAULT '',
    sealed_secret  bytea NOT NULL,
    period         integer NOT NULL,
    digits         integer NOT NULL,
    algorithm      text NOT NULL,
    confirmed_at   timestamptz,
    last_used_step bigint,
    created_at     timestamptz NOT NULL
);
CREATE INDEX totp_credentials_user ON totp_credentials (user_id, kind);
CREATE UNIQUE INDEX totp_credentials_device ON totp_credentials (user_id, device_id) WHERE kind = 'device';

-- +goose Down
DROP TABLE totp_credentials;
