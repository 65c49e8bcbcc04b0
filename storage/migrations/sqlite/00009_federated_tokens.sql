-- The upstream's tokens of a user's link (GrantFederatedToken): one row per
-- link, deleted with it. sealed_tokens is AEAD-sealed by the provider
-- (access, refresh token, expiry, scope) and bound to user, provider and
-- subject, the upstream account they were issued for. refresh_lease_id and
-- refresh_lease_until serialise refreshes across instances: one holder at a
-- time redeems the (possibly rotating) refresh token.
-- +goose Up
CREATE TABLE federated_tokens (
    user_id             TEXT NOT NULL,
    provider            TEXT NOT NULL,
    subject             TEXT NOT NULL,
    sealed_tokens       BLOB NOT NULL,
    refresh_lease_id    TEXT NOT NULL DEFAULT '',
    refresh_lease_until TEXT,
    updated_at          TEXT NOT NULL,
    PRIMARY KEY (user_id, provider),
    FOREIGN KEY (user_id, provider) REFERENCES linked_identities (user_id, provider) ON DELETE CASCADE
) STRICT;

-- +goose Down
DROP TABLE federated_tokens;
