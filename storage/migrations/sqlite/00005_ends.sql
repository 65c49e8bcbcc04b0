-- Ends that are final. A logged-out login session keeps its row (ended_at
-- set) until it expires, so its id is never taken again and nothing can pass
-- it; browser_key_hash is the SHA-256 of the key the browser's session cookie
-- carries beside the sid, replaced at each step up (a copied cookie stops
-- working). Every token and code records the login session it was issued
-- under (session_id, '' for none), so ending the session revokes them.
-- +goose Up
ALTER TABLE login_sessions ADD COLUMN ended_at TEXT;
ALTER TABLE login_sessions ADD COLUMN browser_key_hash BLOB NOT NULL DEFAULT x'';
ALTER TABLE oauth2_authorization_codes ADD COLUMN session_id TEXT NOT NULL DEFAULT '';
ALTER TABLE oauth2_access_tokens ADD COLUMN session_id TEXT NOT NULL DEFAULT '';
ALTER TABLE oauth2_refresh_tokens ADD COLUMN session_id TEXT NOT NULL DEFAULT '';
-- Tokens issued before this migration: their sid is in the stored session.
UPDATE oauth2_authorization_codes SET session_id = json_extract(session, '$.id_token_claims.ext.sid')
    WHERE json_extract(session, '$.id_token_claims.ext.sid') IS NOT NULL;
UPDATE oauth2_access_tokens SET session_id = json_extract(session, '$.id_token_claims.ext.sid')
    WHERE json_extract(session, '$.id_token_claims.ext.sid') IS NOT NULL;
UPDATE oauth2_refresh_tokens SET session_id = json_extract(session, '$.id_token_claims.ext.sid')
    WHERE json_extract(session, '$.id_token_claims.ext.sid') IS NOT NULL;
CREATE INDEX oauth2_authorization_codes_session_id_idx ON oauth2_authorization_codes (session_id);
CREATE INDEX oauth2_access_tokens_session_id_idx ON oauth2_access_tokens (session_id);
CREATE INDEX oauth2_refresh_tokens_session_id_idx ON oauth2_refresh_tokens (session_id);

-- +goose Down
DROP INDEX oauth2_refresh_tokens_session_id_idx;
DROP INDEX oauth2_access_tokens_session_id_idx;
DROP INDEX oauth2_authorization_codes_session_id_idx;
ALTER TABLE oauth2_refresh_tokens DROP COLUMN session_id;
ALTER TABLE oauth2_access_tokens DROP COLUMN session_id;
ALTER TABLE oauth2_authorization_codes DROP COLUMN session_id;
ALTER TABLE login_sessions DROP COLUMN browser_key_hash;
ALTER TABLE login_sessions DROP COLUMN ended_at;
