-- SQLite schema of otpstep. Tables are STRICT. Timestamps are TEXT in UTC,
-- fixed width 'YYYY-MM-DDTHH:MM:SS.ffffffZ', so they sort and compare as strings;
-- booleans are INTEGER 0/1; list fields, the AMR, audit details and fosite
-- sessions are JSON text.
-- +goose Up
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL,
    password_hash TEXT NOT NULL DEFAULT '',
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
) STRICT;
-- Email is lower-cased by the application before it is stored.
CREATE UNIQUE INDEX users_email_key ON users (email);
CREATE INDEX users_created_at_idx ON users (created_at);

CREATE TABLE login_sessions (
    id               TEXT PRIMARY KEY,
    user_id          TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    passed_login_otp INTEGER NOT NULL DEFAULT 0,
    amr              TEXT NOT NULL DEFAULT '[]',
    auth_time        TEXT NOT NULL,
    expires_at       TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
) STRICT;
CREATE INDEX login_sessions_user_id_idx ON login_sessions (user_id);
CREATE INDEX login_sessions_expires_at_idx ON login_sessions (expires_at);

CREATE TABLE signing_keys (
    kid           TEXT PRIMARY KEY,
    algorithm     TEXT NOT NULL,
    public_jwk    BLOB NOT NULL,
    sealed_jwk    BLOB NOT NULL,
    created_at    TEXT NOT NULL,
    retired_at    TEXT,
    publish_until TEXT
) STRICT;

CREATE TABLE audit_events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         TEXT NOT NULL,
    type       TEXT NOT NULL,
    user_id    TEXT NOT NULL DEFAULT '',
    client_id  TEXT NOT NULL DEFAULT '',
    session_id TEXT NOT NULL DEFAULT '',
    ip         TEXT NOT NULL DEFAULT '',
    detail     TEXT
) STRICT;
CREATE INDEX audit_events_user_id_at_idx ON audit_events (user_id, at);
CREATE INDEX audit_events_at_idx ON audit_events (at);

-- Fixed-window counters: one row per key; reset_at = window_start + window.
CREATE TABLE rate_counters (
    "key"        TEXT PRIMARY KEY,
    window_start TEXT NOT NULL,
    reset_at     TEXT NOT NULL,
    count        INTEGER NOT NULL
) STRICT;
CREATE INDEX rate_counters_reset_at_idx ON rate_counters (reset_at);

CREATE TABLE oauth2_clients (
    id                         TEXT PRIMARY KEY,
    secret_hash                TEXT NOT NULL DEFAULT '',
    name                       TEXT NOT NULL DEFAULT '',
    redirect_uris              TEXT NOT NULL DEFAULT '[]',
    grant_types                TEXT NOT NULL DEFAULT '[]',
    response_types             TEXT NOT NULL DEFAULT '[]',
    scopes                     TEXT NOT NULL DEFAULT '[]',
    audience                   TEXT NOT NULL DEFAULT '[]',
    is_public                  INTEGER NOT NULL DEFAULT 0,
    skip_consent               INTEGER NOT NULL DEFAULT 0,
    require_second_factor      INTEGER NOT NULL DEFAULT 1,
    token_endpoint_auth_method TEXT NOT NULL DEFAULT '',
    created_at                 TEXT NOT NULL
) STRICT;
CREATE INDEX oauth2_clients_created_at_idx ON oauth2_clients (created_at);

-- JTIs of client assertion JWTs seen before their expiry (RFC 7523 §3 replay check).
CREATE TABLE oauth2_jti (
    jti        TEXT PRIMARY KEY,
    expires_at TEXT NOT NULL
) STRICT;
CREATE INDEX oauth2_jti_expires_at_idx ON oauth2_jti (expires_at);

CREATE TABLE oauth2_authorization_codes (
    signature          TEXT PRIMARY KEY,
    request_id         TEXT NOT NULL,
    requested_at       TEXT NOT NULL,
    client_id          TEXT NOT NULL REFERENCES oauth2_clients (id) ON DELETE CASCADE,
    scopes             TEXT NOT NULL DEFAULT '[]',
    granted_scopes     TEXT NOT NULL DEFAULT '[]',
    requested_audience TEXT NOT NULL DEFAULT '[]',
    granted_audience   TEXT NOT NULL DEFAULT '[]',
    form               TEXT NOT NULL DEFAULT '',
    session            TEXT NOT NULL,
    subject            TEXT NOT NULL DEFAULT '',
    active             INTEGER NOT NULL DEFAULT 1,
    expires_at         TEXT
) STRICT;
CREATE INDEX oauth2_authorization_codes_request_id_idx ON oauth2_authorization_codes (request_id);
CREATE INDEX oauth2_authorization_codes_subject_idx ON oauth2_authorization_codes (subject);
CREATE INDEX oauth2_authorization_codes_client_id_idx ON oauth2_authorization_codes (client_id);
CREATE INDEX oauth2_authorization_codes_expires_at_idx ON oauth2_authorization_codes (expires_at);

CREATE TABLE oauth2_access_tokens (
    signature          TEXT PRIMARY KEY,
    request_id         TEXT NOT NULL,
    requested_at       TEXT NOT NULL,
    client_id          TEXT NOT NULL REFERENCES oauth2_clients (id) ON DELETE CASCADE,
    scopes             TEXT NOT NULL DEFAULT '[]',
    granted_scopes     TEXT NOT NULL DEFAULT '[]',
    requested_audience TEXT NOT NULL DEFAULT '[]',
    granted_audience   TEXT NOT NULL DEFAULT '[]',
    form               TEXT NOT NULL DEFAULT '',
    session            TEXT NOT NULL,
    subject            TEXT NOT NULL DEFAULT '',
    active             INTEGER NOT NULL DEFAULT 1,
    expires_at         TEXT
) STRICT;
CREATE INDEX oauth2_access_tokens_request_id_idx ON oauth2_access_tokens (request_id);
CREATE INDEX oauth2_access_tokens_subject_idx ON oauth2_access_tokens (subject);
CREATE INDEX oauth2_access_tokens_client_id_idx ON oauth2_access_tokens (client_id);
CREATE INDEX oauth2_access_tokens_expires_at_idx ON oauth2_access_tokens (expires_at);

CREATE TABLE oauth2_refresh_tokens (
    signature          TEXT PRIMARY KEY,
    request_id         TEXT NOT NULL,
    requested_at       TEXT NOT NULL,
    client_id          TEXT NOT NULL REFERENCES oauth2_clients (id) ON DELETE CASCADE,
    scopes             TEXT NOT NULL DEFAULT '[]',
    granted_scopes     TEXT NOT NULL DEFAULT '[]',
    requested_audience TEXT NOT NULL DEFAULT '[]',
    granted_audience   TEXT NOT NULL DEFAULT '[]',
    form               TEXT NOT NULL DEFAULT '',
    session            TEXT NOT NULL,
    subject            TEXT NOT NULL DEFAULT '',
    active             INTEGER NOT NULL DEFAULT 1,
    access_token_signature TEXT NOT NULL DEFAULT '',
    expires_at         TEXT
) STRICT;
CREATE INDEX oauth2_refresh_tokens_request_id_idx ON oauth2_refresh_tokens (request_id);
CREATE INDEX oauth2_refresh_tokens_subject_idx ON oauth2_refresh_tokens (subject);
CREATE INDEX oauth2_refresh_tokens_client_id_idx ON oauth2_refresh_tokens (client_id);
CREATE INDEX oauth2_refresh_tokens_expires_at_idx ON oauth2_refresh_tokens (expires_at);

CREATE TABLE oauth2_pkce (
    signature          TEXT PRIMARY KEY,
    request_id         TEXT NOT NULL,
    requested_at       TEXT NOT NULL,
    client_id          TEXT NOT NULL REFERENCES oauth2_clients (id) ON DELETE CASCADE,
    scopes             TEXT NOT NULL DEFAULT '[]',
    granted_scopes     TEXT NOT NULL DEFAULT '[]',
    requested_audience TEXT NOT NULL DEFAULT '[]',
    granted_audience   TEXT NOT NULL DEFAULT '[]',
    form               TEXT NOT NULL DEFAULT '',
    session            TEXT NOT NULL,
    subject            TEXT NOT NULL DEFAULT '',
    active             INTEGER NOT NULL DEFAULT 1,
    expires_at         TEXT
) STRICT;
CREATE INDEX oauth2_pkce_request_id_idx ON oauth2_pkce (request_id);
CREATE INDEX oauth2_pkce_subject_idx ON oauth2_pkce (subject);
CREATE INDEX oauth2_pkce_client_id_idx ON oauth2_pkce (client_id);
CREATE INDEX oauth2_pkce_expires_at_idx ON oauth2_pkce (expires_at);

CREATE TABLE oauth2_oidc_sessions (
    signature          TEXT PRIMARY KEY,
    request_id         TEXT NOT NULL,
    requested_at       TEXT NOT NULL,
    client_id          TEXT NOT NULL REFERENCES oauth2_clients (id) ON DELETE CASCADE,
    scopes             TEXT NOT NULL DEFAULT '[]',
    granted_scopes     TEXT NOT NULL DEFAULT '[]',
    requested_audience TEXT NOT NULL DEFAULT '[]',
    granted_audience   TEXT NOT NULL DEFAULT '[]',
    form               TEXT NOT NULL DEFAULT '',
    session            TEXT NOT NULL,
    subject            TEXT NOT NULL DEFAULT '',
    active             INTEGER NOT NULL DEFAULT 1,
    expires_at         TEXT
) STRICT;
CREATE INDEX oauth2_oidc_sessions_request_id_idx ON oauth2_oidc_sessions (request_id);
CREATE INDEX oauth2_oidc_sessions_subject_idx ON oauth2_oidc_sessions (subject);
CREATE INDEX oauth2_oidc_sessions_client_id_idx ON oauth2_oidc_sessions (client_id);
CREATE INDEX oauth2_oidc_sessions_expires_at_idx ON oauth2_oidc_sessions (expires_at);

-- +goose Down
DROP TABLE oauth2_oidc_sessions;
DROP TABLE oauth2_pkce;
DROP TABLE oauth2_refresh_tokens;
DROP TABLE oauth2_access_tokens;
DROP TABLE oauth2_authorization_codes;
DROP TABLE oauth2_jti;
DROP TABLE oauth2_clients;
DROP TABLE rate_counters;
DROP TABLE audit_events;
DROP TABLE signing_keys;
DROP TABLE login_sessions;
DROP TABLE users;
