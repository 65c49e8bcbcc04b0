-- user_pins: a user's PACE PIN (4 digits), as an argon2id hash; at most one
-- per user, gone with the user.
-- login_session_upstreams: the upstream identity a login session signed in
-- with (sign-in with a partner), so PACE's body-less SetFederatedIdentity
-- can link it; gone with the session.
-- +goose Up
CREATE TABLE user_pins (
    user_id    TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    pin_hash   TEXT NOT NULL,
    updated_at TEXT NOT NULL
) STRICT;
CREATE TABLE login_session_upstreams (
    session_id TEXT PRIMARY KEY REFERENCES login_sessions (id) ON DELETE CASCADE,
    provider   TEXT NOT NULL,
    subject    TEXT NOT NULL,
    email      TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL
) STRICT;

-- +goose Down
DROP TABLE login_session_upstreams;
DROP TABLE user_pins;
