-- user_pins: a user's PACE PIN (4 digits), as an argon2id hash; at most one
-- per user, gone with the user.
-- login_session_upstreams: the upstream identity a login session signed in
-- with (sign-in with a partner), so PACE's body-less SetFederatedIdentity
-- can link it; gone with the session.
-- +goose Up
CREATE TABLE user_pins (
    user_id    text PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    pin_hash   text NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE TABLE login_session_upstreams (
    session_id text PRIMARY KEY REFERENCES login_sessions (id) ON DELETE CASCADE,
    provider   text NOT NULL,
    subject    text NOT NULL,
    email      text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL
);

-- +goose Down
DROP TABLE login_session_upstreams;
DROP TABLE user_pins;
