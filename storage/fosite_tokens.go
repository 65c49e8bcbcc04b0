package storage

import (
	"context"
	"fmt"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/handler/pkce"
)

var (
	_ fosite.ClientManager               = (*Store)(nil)
	_ oauth2.CoreStorage                 = (*Store)(nil)
	_ oauth2.TokenRevocationStorage      = (*Store)(nil)
	_ pkce.PKCERequestStorage            = (*Store)(nil)
	_ openid.OpenIDConnectRequestStorage = (*Store)(nil)
)

// Every Get below returns a *fosite.Request with ID, RequestedAt, the client
// (*Client), requested and granted scopes and audiences, the form, and the
// stored session decoded into the session argument (no session when it is
// nil). Expired rows are still returned: fosite checks expiry on the session.
// A missing row → an error matching fosite.ErrNotFound and ErrNotFound.
// Deletes of missing rows are not errors.

// CreateAuthorizeCodeSession stores the authorize request under the code's signature.
func (s *Store) CreateAuthorizeCodeSession(ctx context.Context, signature string, r fosite.Requester) error {
	return s.createRequest(ctx, &s.tables.codes, signature, r)
}

// GetAuthorizeCodeSession loads the authorize request of a code. For a code
// already invalidated it returns the request AND fosite.ErrInvalidatedAuthorizeCode,
// so that fosite can revoke the tokens issued for it.
func (s *Store) GetAuthorizeCodeSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	req, active, err := s.getRequest(ctx, &s.tables.codes, signature, session)
	if err != nil {
		return nil, err
	}
	if !active {
		return req, fmt.Errorf("storage: %w", fosite.ErrInvalidatedAuthorizeCode)
	}
	return req, nil
}

// InvalidateAuthorizeCodeSession marks a code used. It MUST be atomic: one
// conditional UPDATE, so of two concurrent redemptions exactly one succeeds;
// the other gets fosite.ErrInvalidatedAuthorizeCode (ErrNotFound for an
// unknown code).
//
// First it checks the grant (grantCheck): the code of an ended login session
// or a disabled user → ErrGrantEnded, nothing changed.
func (s *Store) InvalidateAuthorizeCodeSession(ctx context.Context, signature string) error {
	if err := s.grantCheck(ctx, "oauth2_authorization_codes", signature); err != nil {
		return err
	}
	n, err := s.exec(ctx, `UPDATE oauth2_authorization_codes SET active = FALSE WHERE signature = $1 AND active`, signature)
	if err != nil {
		return fmt.Errorf("storage: invalidate authorization code: %w", err)
	}
	if n == 1 {
		// The client gets tokens for the code's session: its back channel
		// learns of the session's end.
		return s.recordSessionClient(ctx, signature)
	}
	if err := s.requestExists(ctx, "oauth2_authorization_codes", signature, "authorization code"); err != nil {
		return err
	}
	return fmt.Errorf("storage: %w", fosite.ErrInvalidatedAuthorizeCode)
}

// CreateAccessTokenSession stores the request of an access token.
func (s *Store) CreateAccessTokenSession(ctx context.Context, signature string, r fosite.Requester) error {
	return s.createRequest(ctx, &s.tables.access, signature, r)
}

// GetAccessTokenSession loads the request of an access token: one indexed
// query joining the client. Revoked tokens are gone (ErrNotFound).
func (s *Store) GetAccessTokenSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	req, active, err := s.getRequest(ctx, &s.tables.access, signature, session)
	if err != nil {
		return nil, err
	}
	if !active {
		return nil, notFound("access token")
	}
	return req, nil
}

// DeleteAccessTokenSession removes one access token.
func (s *Store) DeleteAccessTokenSession(ctx context.Context, signature string) error {
	return s.deleteRequest(ctx, &s.tables.access, signature)
}

// CreateRefreshTokenSession stores the request of a refresh token, with the
// signature of the access token issued alongside it.
func (s *Store) CreateRefreshTokenSession(ctx context.Context, signature, accessSignature string, r fosite.Requester) error {
	return s.createRequest(ctx, &s.tables.refresh, signature, r, accessSignature)
}

// GetRefreshTokenSession loads the request of a refresh token. For a token
// already rotated or revoked it returns the request AND fosite.ErrInactiveToken:
// fosite then treats the use as a replay and revokes the whole grant.
func (s *Store) GetRefreshTokenSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	req, active, err := s.getRequest(ctx, &s.tables.refresh, signature, session)
	if err != nil {
		return nil, err
	}
	if !active {
		return req, fmt.Errorf("storage: refresh token inactive: %w", fosite.ErrInactiveToken)
	}
	return req, nil
}

// DeleteRefreshTokenSession removes one refresh token.
func (s *Store) DeleteRefreshTokenSession(ctx context.Context, signature string) error {
	return s.deleteRequest(ctx, &s.tables.refresh, signature)
}

// RotateRefreshToken retires a refresh token that is being exchanged: it
// marks the token inactive and deletes the access tokens of requestID. It MUST
// be atomic: the deactivation is one conditional UPDATE, so of two concurrent
// refreshes with the same token exactly one rotates; the other gets
// fosite.ErrInactiveToken (ErrNotFound for an unknown token). Both steps run
// in one transaction (the caller's, when ctx carries one), after the grant
// check (grantCheck): the refresh token of an ended login session or a
// disabled user → ErrGrantEnded, nothing changed.
func (s *Store) RotateRefreshToken(ctx context.Context, requestID, signature string) error {
	return s.InTx(ctx, func(ctx context.Context) error {
		if err := s.grantCheck(ctx, "oauth2_refresh_tokens", signature); err != nil {
			return err
		}
		n, err := s.exec(ctx, `UPDATE oauth2_refresh_tokens SET active = FALSE
			WHERE signature = $1 AND request_id = $2 AND active`, signature, requestID)
		if err != nil {
			return fmt.Errorf("storage: rotate refresh token: %w", err)
		}
		if n == 0 {
			if err := s.requestExists(ctx, "oauth2_refresh_tokens", signature, "refresh token"); err != nil {
				return err
			}
			return fmt.Errorf("storage: rotate refresh token: %w", fosite.ErrInactiveToken)
		}
		return s.RevokeAccessToken(ctx, requestID)
	})
}

// RevokeRefreshToken marks every refresh token of requestID inactive (RFC 7009
// §2.1). Unknown request IDs are not an error.
func (s *Store) RevokeRefreshToken(ctx context.Context, requestID string) error {
	if _, err := s.exec(ctx, `UPDATE oauth2_refresh_tokens SET active = FALSE WHERE request_id = $1 AND active`, requestID); err != nil {
		return fmt.Errorf("storage: revoke refresh tokens: %w", err)
	}
	return nil
}

// RevokeAccessToken deletes every access token of requestID (RFC 7009 §2.1).
// Unknown request IDs are not an error.
func (s *Store) RevokeAccessToken(ctx context.Context, requestID string) error {
	if _, err := s.exec(ctx, `DELETE FROM oauth2_access_tokens WHERE request_id = $1`, requestID); err != nil {
		return fmt.Errorf("storage: revoke access tokens: %w", err)
	}
	return nil
}

// CreatePKCERequestSession stores the PKCE challenge request of a code.
func (s *Store) CreatePKCERequestSession(ctx context.Context, signature string, r fosite.Requester) error {
	return s.createRequest(ctx, &s.tables.pkce, signature, r)
}

// GetPKCERequestSession loads the PKCE challenge request of a code.
func (s *Store) GetPKCERequestSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	req, _, err := s.getRequest(ctx, &s.tables.pkce, signature, session)
	if err != nil {
		return nil, err
	}
	return req, nil
}

// DeletePKCERequestSession removes the PKCE challenge request of a code.
func (s *Store) DeletePKCERequestSession(ctx context.Context, signature string) error {
	return s.deleteRequest(ctx, &s.tables.pkce, signature)
}

// CreateOpenIDConnectSession stores the OpenID Connect request of an
// authorization code, keyed by the raw code.
func (s *Store) CreateOpenIDConnectSession(ctx context.Context, authorizeCode string, r fosite.Requester) error {
	return s.createRequest(ctx, &s.tables.oidc, authorizeCode, r)
}

// GetOpenIDConnectSession loads the OpenID Connect request of a code, decoding
// the stored session into r.GetSession(). A missing one →
// openid.ErrNoSessionFound (which is fosite.ErrNotFound).
func (s *Store) GetOpenIDConnectSession(ctx context.Context, authorizeCode string, r fosite.Requester) (fosite.Requester, error) {
	var session fosite.Session
	if r != nil {
		session = r.GetSession()
	}
	req, _, err := s.getRequest(ctx, &s.tables.oidc, authorizeCode, session)
	if err != nil {
		return nil, err
	}
	return req, nil
}

// DeleteOpenIDConnectSession removes the OpenID Connect request of a code.
func (s *Store) DeleteOpenIDConnectSession(ctx context.Context, authorizeCode string) error {
	return s.deleteRequest(ctx, &s.tables.oidc, authorizeCode)
}

// requestExists returns nil when table has a row under signature, a
// not-found error naming what otherwise.
func (s *Store) requestExists(ctx context.Context, table, signature, what string) error {
	var one int
	if err := s.queryRow(ctx, `SELECT 1 FROM `+table+` WHERE signature = $1`, signature).Scan(&one); err != nil {
		return scanErr(err, what)
	}
	return nil
}
