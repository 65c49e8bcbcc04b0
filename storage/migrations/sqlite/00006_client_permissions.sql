-- Permissions an operator grants a client. login_ui: the client is
-- a login UI, which may pass a login session's second factor with PUT
-- /sessions/{id} passedLoginOTP:true and receive the login OTP in the
-- response. introspect_any: the client is a resource server, which may
-- introspect every token (RFC 7662 §2.1); any other client sees only the
-- tokens issued to it or naming it in their audience.
-- +goose Up
ALTER TABLE oauth2_clients ADD COLUMN login_ui INTEGER NOT NULL DEFAULT 0;
ALTER TABLE oauth2_clients ADD COLUMN introspect_any INTEGER NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE oauth2_clients DROP COLUMN introspect_any;
ALTER TABLE oauth2_clients DROP COLUMN login_ui;
