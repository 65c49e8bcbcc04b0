-- How a client authenticates and signs, and whether a user proved the email
-- address. jwks / jwks_uri: the client's public keys for private_key_jwt
-- (RFC 7523; a JWK Set as JSON text, or where to fetch it);
-- token_endpoint_auth_signing_alg: the one algorithm its assertions use;
-- id_token_signed_response_alg: the algorithm of its ID tokens ('' = the
-- provider's default, oauth2.signing_alg). users.email_verified: the user
-- passed an emailed code or was created verified.
-- +goose Up
ALTER TABLE oauth2_clients ADD COLUMN jwks text NOT NULL DEFAULT '';
ALTER TABLE oauth2_clients ADD COLUMN jwks_uri text NOT NULL DEFAULT '';
ALTER TABLE oauth2_clients ADD COLUMN token_endpoint_auth_signing_alg text NOT NULL DEFAULT '';
ALTER TABLE oauth2_clients ADD COLUMN id_token_signed_response_alg text NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN email_verified boolean NOT NULL DEFAULT false;

-- +goose Down
ALTER TABLE users DROP COLUMN email_verified;
ALTER TABLE oauth2_clients DROP COLUMN id_token_signed_response_alg;
ALTER TABLE oauth2_clients DROP COLUMN token_endpoint_auth_signing_alg;
ALTER TABLE oauth2_clients DROP COLUMN jwks_uri;
ALTER TABLE oauth2_clients DROP COLUMN jwks;
