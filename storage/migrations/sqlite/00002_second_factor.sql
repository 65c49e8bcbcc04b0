-- Second factor: e-mailed one-time-code challenges, the mail outbox that
-- delivers them, and identities linked at partner identity providers.
-- Tables are STRICT; timestamps are fixed-width UTC TEXT, as in 00001.
-- +goose Up

-- One row per issued code. kind is 'login' (bound to a login session) or
-- 'account' (session_id ''). session_id has no foreign key: '' is not a login
-- session, and a challenge of a deleted session simply stays unmatched until
-- PurgeExpired removes it. A challenge is live while consumed_at and
-- burned_at are both NULL; at most one is live per (kind, user_id, session_id).
CREATE TABLE otp_challenges (
    id           TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_id   TEXT NOT NULL DEFAULT '',
    client_id    TEXT NOT NULL DEFAULT '',
    code_hash    BLOB NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    expires_at   TEXT NOT NULL,
    consumed_at  TEXT,
    burned_at    TEXT,
    created_at   TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX otp_challenges_live_key ON otp_challenges (kind, user_id, session_id)
    WHERE consumed_at IS NULL AND burned_at IS NULL;
CREATE INDEX otp_challenges_user_id_idx ON otp_challenges (user_id);
CREATE INDEX otp_challenges_expires_at_idx ON otp_challenges (expires_at);

-- Mails waiting for delivery. sealed_payload is AEAD-sealed by the provider
-- (recipient and body); available_at is when the row may next be claimed.
CREATE TABLE mail_outbox (
    id             TEXT PRIMARY KEY,
    sealed_payload BLOB NOT NULL,
    attempts       INTEGER NOT NULL DEFAULT 0,
    available_at   TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    last_error     TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX mail_outbox_available_at_idx ON mail_outbox (available_at);

-- A user's account at a partner identity provider: one per (user, provider),
-- and a partner subject belongs to one user only.
CREATE TABLE linked_identities (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider   TEXT NOT NULL,
    subject    TEXT NOT NULL,
    email      TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX linked_identities_provider_subject_key ON linked_identities (provider, subject);
CREATE UNIQUE INDEX linked_identities_user_id_provider_key ON linked_identities (user_id, provider);

-- +goose Down
DROP TABLE linked_identities;
DROP TABLE mail_outbox;
DROP TABLE otp_challenges;
