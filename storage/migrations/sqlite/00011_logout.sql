-- Logout (OpenID Connect RP-Initiated Logout 1.0 and Back-Channel Logout
-- 1.0). A client registers where the browser may return after a logout
-- (post_logout_redirect_uris, exact match) and where its back channel is
-- (backchannel_logout_uri, empty for none). login_session_clients records,
-- at each code exchange, which clients got tokens for a login session; when
-- the session ends, the same transaction queues one logout token per such
-- client with a back channel in backchannel_logouts, an outbox with at most
-- one row per (client, session). A row is settled (settled_at) once
-- delivered or given up, and kept until its session's row is gone.
-- +goose Up
ALTER TABLE oauth2_clients ADD COLUMN post_logout_redirect_uris TEXT NOT NULL DEFAULT '[]';
ALTER TABLE oauth2_clients ADD COLUMN backchannel_logout_uri TEXT NOT NULL DEFAULT '';
ALTER TABLE oauth2_clients ADD COLUMN backchannel_logout_session_required INTEGER NOT NULL DEFAULT 0;
CREATE TABLE login_session_clients (
    session_id TEXT NOT NULL,
    client_id  TEXT NOT NULL REFERENCES oauth2_clients (id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    PRIMARY KEY (session_id, client_id)
) STRICT;
CREATE INDEX login_session_clients_client_id_idx ON login_session_clients (client_id);
CREATE TABLE backchannel_logouts (
    id           TEXT PRIMARY KEY,
    client_id    TEXT NOT NULL REFERENCES oauth2_clients (id) ON DELETE CASCADE,
    session_id   TEXT NOT NULL,
    subject      TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    available_at TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    settled_at   TEXT,
    last_error   TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE UNIQUE INDEX backchannel_logouts_client_session_key ON backchannel_logouts (client_id, session_id);
CREATE INDEX backchannel_logouts_due_idx ON backchannel_logouts (available_at) WHERE settled_at IS NULL;
CREATE INDEX backchannel_logouts_session_id_idx ON backchannel_logouts (session_id);

-- +goose Down
DROP TABLE backchannel_logouts;
DROP TABLE login_session_clients;
ALTER TABLE oauth2_clients DROP COLUMN backchannel_logout_session_required;
ALTER TABLE oauth2_clients DROP COLUMN backchannel_logout_uri;
ALTER TABLE oauth2_clients DROP COLUMN post_logout_redirect_uris;
