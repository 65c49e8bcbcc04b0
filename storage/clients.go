package storage

import (
	"context"
	"fmt"

	"github.com/ory/fosite"
)

// clientColumns are the oauth2_clients columns, qualified by alias c so that
// token reads can join them in.
const clientColumns = `c.id, c.secret_hash, c.name, c.redirect_uris, c.grant_types, c.response_types,
	c.scopes, c.audience, c.is_public, c.skip_consent, c.require_second_factor,
	c.token_endpoint_auth_method, c.created_at, c.login_ui, c.introspect_any,
	c.jwks, c.jwks_uri, c.token_endpoint_auth_signing_alg, c.id_token_signed_response_alg, c.client_uri` + clientLogoutColumns

// clientLogoutColumns are the logout registration's columns (ClientLogout).
const clientLogoutColumns = `,
	c.post_logout_redirect_uris, c.backchannel_logout_uri, c.backchannel_logout_session_required`

const getClientSQL = `SELECT ` + clientColumns + ` FROM oauth2_clients c WHERE c.id = $1`

// clientRow receives a client's columns; lists arrive as JSON text.
type clientRow struct {
	c     Client
	lists [5]string
	// postLogoutRedirectURIs is ClientLogout's list, as JSON text.
	postLogoutRedirectURIs string
}

func (r *clientRow) dest() []any {
	c := &r.c
	return []any{&c.ID, &c.SecretHash, &c.Name, &r.lists[0], &r.lists[1], &r.lists[2],
		&r.lists[3], &r.lists[4], &c.Public, &c.SkipConsent, &c.RequireSecondFactor,
		&c.TokenEndpointAuthMethod, timeCol{&c.CreatedAt}, &c.LoginUI, &c.IntrospectAny,
		&c.JWKS, &c.JWKSURI, &c.TokenEndpointAuthSigningAlg, &c.IDTokenSignedResponseAlg, &c.ClientURI,
		&r.postLogoutRedirectURIs, &c.Logout.BackchannelLogoutURI, &c.Logout.BackchannelLogoutSessionRequired}
}

func (r *clientRow) client() (*Client, error) {
	c := r.c
	for i, dst := range []*[]string{&c.RedirectURIs, &c.GrantTypes, &c.ResponseTypes, &c.Scopes, &c.Audience} {
		list, err := decodeList(r.lists[i])
		if err != nil {
			return nil, err
		}
		*dst = list
	}
	list, err := decodeList(r.postLogoutRedirectURIs)
	if err != nil {
		return nil, err
	}
	c.Logout.PostLogoutRedirectURIs = list
	return &c, nil
}

// CreateClient stores a new OAuth2 client. A zero CreatedAt is set from the
// clock. An existing client with the same ID → ErrAlreadyExists.
func (s *Store) CreateClient(ctx context.Context, c *Client) error {
	return s.InTx(ctx, func(ctx context.Context) error { return s.createClient(ctx, c) })
}

func (s *Store) createClient(ctx context.Context, c *Client) error {
	if c.CreatedAt.IsZero() {
		c.CreatedAt = s.now()
	}
	c.CreatedAt = normTime(c.CreatedAt)
	_, err := s.exec(ctx, `INSERT INTO oauth2_clients (id, secret_hash, name, redirect_uris, grant_types,
		response_types, scopes, audience, is_public, skip_consent, require_second_factor,
		token_endpoint_auth_method, created_at, login_ui, introspect_any,
		jwks, jwks_uri, token_endpoint_auth_signing_alg, id_token_signed_response_alg, client_uri)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
		$16, $17, $18, $19, $20)`,
		c.ID, c.SecretHash, c.Name, encodeList(c.RedirectURIs), encodeList(c.GrantTypes),
		encodeList(c.ResponseTypes), encodeList(c.Scopes), encodeList(c.Audience),
		c.Public, c.SkipConsent, c.RequireSecondFactor, c.TokenEndpointAuthMethod, s.timeArg(c.CreatedAt),
		c.LoginUI, c.IntrospectAny,
		c.JWKS, c.JWKSURI, c.TokenEndpointAuthSigningAlg, c.IDTokenSignedResponseAlg, c.ClientURI)
	if err != nil {
		return fmt.Errorf("storage: create client %q: %w", c.ID, err)
	}
	if err := s.setClientLogout(ctx, c); err != nil {
		return fmt.Errorf("storage: create client %q: %w", c.ID, err)
	}
	return nil
}

// GetClient implements fosite.ClientManager: the *Client with this ID, or an
// error matching both ErrNotFound and fosite.ErrNotFound. One indexed query.
func (s *Store) GetClient(ctx context.Context, id string) (fosite.Client, error) {
	c, err := s.GetOAuth2Client(ctx, id)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// GetOAuth2Client is GetClient returning the concrete type.
func (s *Store) GetOAuth2Client(ctx context.Context, id string) (*Client, error) {
	var r clientRow
	err := s.readRow(ctx, getClientSQL, id).Scan(r.dest()...)
	if err != nil {
		return nil, scanErr(err, "client")
	}
	return r.client()
}

// ListClients returns every client, oldest first.
func (s *Store) ListClients(ctx context.Context) ([]Client, error) {
	rows, err := s.query(ctx, `SELECT `+clientColumns+` FROM oauth2_clients c ORDER BY c.created_at, c.id`)
	if err != nil {
		return nil, fmt.Errorf("storage: list clients: %w", err)
	}
	defer rows.Close()
	var clients []Client
	for rows.Next() {
		var r clientRow
		if err := rows.Scan(r.dest()...); err != nil {
			return nil, fmt.Errorf("storage: list clients: %w", classify(err))
		}
		c, err := r.client()
		if err != nil {
			return nil, fmt.Errorf("storage: list clients: %w", err)
		}
		clients = append(clients, *c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("storage: list clients: %w", classify(err))
	}
	return clients, nil
}

// DeleteClient removes a client together with its authorization codes, access
// and refresh tokens, PKCE and OpenID Connect sessions (ON DELETE CASCADE), in
// one atomic statement. A missing client → ErrNotFound.
func (s *Store) DeleteClient(ctx context.Context, id string) error {
	n, err := s.exec(ctx, `DELETE FROM oauth2_clients WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("storage: delete client %q: %w", id, err)
	}
	if n == 0 {
		return notFound("client")
	}
	return nil
}
