-- client_uri: the client's home page (OpenID Connect Dynamic Client
-- Registration §2 client_uri), which otpstep's error pages link back to.
-- Empty when the operator gave none.
-- +goose Up
ALTER TABLE oauth2_clients ADD COLUMN client_uri TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE oauth2_clients DROP COLUMN client_uri;
