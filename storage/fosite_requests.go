package storage

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"
)

// fosite keeps one "request" per token: the authorize or token request the
// token was issued for. Authorization codes, access tokens, refresh tokens,
// PKCE and OpenID Connect sessions each have a table of such rows, keyed by
// the token signature (by the raw code for OpenID Connect sessions).

// requestTable is one of fosite's request tables with its prepared SQL.
type requestTable struct {
	name      string           // for error messages
	expiresOf fosite.TokenType // the session expiry copied into expires_at
	bySession bool             // has session_id, the login session the row was issued under
	insert    string
	get       string // the row and its client (joined)
	getRow    string // the row and its client_id
	// getRowUser is getRow and the user the row's subject names, all empty
	// (ID "") when it names none (see WithSubjectUser).
	getRowUser string
	delete     string
}

// requestTables are fosite's five request tables.
type requestTables struct {
	codes, access, refresh, pkce, oidc requestTable
}

const requestColumns = `signature, request_id, requested_at, client_id, scopes, granted_scopes,
	requested_audience, granted_audience, form, session, subject, active, expires_at`

func newRequestTable(table, name string, expiresOf fosite.TokenType, bySession bool, extraColumn string) requestTable {
	cols, vals := requestColumns, `$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13`
	if bySession {
		cols += ", session_id"
		vals += ", $14"
	}
	if extraColumn != "" {
		cols += ", " + extraColumn
		vals += fmt.Sprintf(", $%d", strings.Count(vals, "$")+1)
	}
	return requestTable{
		name:      name,
		expiresOf: expiresOf,
		bySession: bySession,
		insert:    `INSERT INTO ` + table + ` (` + cols + `) VALUES (` + vals + `)`,
		// One indexed query: the request row and its client.
		get: `SELECT t.request_id, t.requested_at, t.scopes, t.granted_scopes, t.requested_audience,
			t.granted_audience, t.form, t.session, t.active, ` + clientColumns + `
			FROM ` + table + ` t JOIN oauth2_clients c ON c.id = t.client_id
			WHERE t.signature = $1`,
		// The row alone, for a Store with a ClientLoader.
		getRow: `SELECT request_id, requested_at, scopes, granted_scopes, requested_audience,
			granted_audience, form, session, active, client_id
			FROM ` + table + ` WHERE signature = $1`,
		getRowUser: `SELECT t.request_id, t.requested_at, t.scopes, t.granted_scopes, t.requested_audience,
			t.granted_audience, t.form, t.session, t.active, t.client_id,
			COALESCE(u.id, ''), COALESCE(u.email, ''), COALESCE(u.password_hash, ''), COALESCE(u.disabled, false),
			COALESCE(u.created_at, t.requested_at), COALESCE(u.updated_at, t.requested_at),
			COALESCE(u.email_verified, false)
			FROM ` + table + ` t LEFT JOIN users u ON u.id = t.subject WHERE t.signature = $1`,
		delete: `DELETE FROM ` + table + ` WHERE signature = $1`,
	}
}

func newRequestTables() requestTables {
	return requestTables{
		codes:   newRequestTable("oauth2_authorization_codes", "authorization code", fosite.AuthorizeCode, true, ""),
		access:  newRequestTable("oauth2_access_tokens", "access token", fosite.AccessToken, true, ""),
		refresh: newRequestTable("oauth2_refresh_tokens", "refresh token", fosite.RefreshToken, true, "access_token_signature"),
		pkce:    newRequestTable("oauth2_pkce", "PKCE request", fosite.AuthorizeCode, false, ""),
		oidc:    newRequestTable("oauth2_oidc_sessions", "OpenID Connect session", fosite.AuthorizeCode, false, ""),
	}
}

// createRequest stores r under key. extra is the refresh table's
// access_token_signature and is ignored for the other tables.
func (s *Store) createRequest(ctx context.Context, t *requestTable, key string, r fosite.Requester, extra ...string) error {
	var (
		subject   string
		expiresAt any
	)
	session := r.GetSession()
	sessionJSON := []byte("null")
	if session != nil {
		subject = session.GetSubject()
		expiresAt = s.nullTimeArg(session.GetExpiresAt(t.expiresOf))
		b, err := json.Marshal(session)
		if err != nil {
			return fmt.Errorf("storage: create %s: encode session: %w", t.name, err)
		}
		sessionJSON = b
	}
	var clientID string
	if c := r.GetClient(); c != nil {
		clientID = c.GetID()
	}
	args := []any{key, r.GetID(), s.timeArg(r.GetRequestedAt()), clientID,
		encodeList(r.GetRequestedScopes()), encodeList(r.GetGrantedScopes()),
		encodeList(r.GetRequestedAudience()), encodeList(r.GetGrantedAudience()),
		r.GetRequestForm().Encode(), string(sessionJSON), subject, true, expiresAt}
	if t.bySession {
		args = append(args, loginSessionID(session))
	}
	for _, e := range extra {
		args = append(args, e)
	}
	if _, err := s.exec(ctx, t.insert, args...); err != nil {
		return fmt.Errorf("storage: create %s: %w", t.name, err)
	}
	return nil
}

// loginSessionID is the sid a token's session names ("" for none): a
// provider.SessionIDCarrier's, else the ID token claim "sid" of an openid.Session.
func loginSessionID(session fosite.Session) string {
	switch s := session.(type) {
	case nil:
		return ""
	case interface{ SessionID() string }:
		return s.SessionID()
	case openid.Session:
		if c := s.IDTokenClaims(); c != nil {
			sid, _ := c.Extra["sid"].(string)
			return sid
		}
	}
	return ""
}

// getRequest loads the request stored under key. The stored session is
// decoded into session (when not nil), which becomes the request's session.
// It returns whether the row is active; the caller decides what an inactive
// row means.
func (s *Store) getRequest(ctx context.Context, t *requestTable, key string, session fosite.Session) (*fosite.Request, bool, error) {
	var (
		req                                    fosite.Request
		scopes, granted, reqAud, grantedAud, f string
		sessionJSON                            []byte
		active                                 bool
	)
	dest := make([]any, 0, 9+13) // the row's columns and the client's
	dest = append(dest, &req.ID, timeCol{&req.RequestedAt}, &scopes, &granted, &reqAud, &grantedAud,
		&f, &sessionJSON, &active)
	if s.clients != nil && s.txFrom(ctx) == nil {
		// The token row alone (with its subject's user when the caller
		// asks); its client from the loader.
		var clientID string
		if su := subjectUserFrom(ctx); su != nil {
			var u User
			if err := s.readRow(ctx, t.getRowUser, key).Scan(append(append(dest, &clientID), userDest(&u)...)...); err != nil {
				return nil, false, scanErr(err, t.name)
			}
			su.Read, su.User = true, nil
			if u.ID != "" {
				su.User = &u
			}
		} else if err := s.readRow(ctx, t.getRow, key).Scan(append(dest, &clientID)...); err != nil {
			return nil, false, scanErr(err, t.name)
		}
		client, err := s.loadClient(ctx, t, clientID)
		if err != nil {
			return nil, false, err
		}
		req.Client = client
	} else {
		var cr clientRow
		if err := s.readRow(ctx, t.get, key).Scan(append(dest, cr.dest()...)...); err != nil {
			return nil, false, scanErr(err, t.name)
		}
		client, err := cr.client()
		if err != nil {
			return nil, false, fmt.Errorf("storage: get %s: %w", t.name, err)
		}
		req.Client = client
	}
	for _, l := range []struct {
		dst *fosite.Arguments
		src string
	}{{&req.RequestedScope, scopes}, {&req.GrantedScope, granted}, {&req.RequestedAudience, reqAud}, {&req.GrantedAudience, grantedAud}} {
		list, err := decodeList(l.src)
		if err != nil {
			return nil, false, fmt.Errorf("storage: get %s: %w", t.name, err)
		}
		*l.dst = fosite.Arguments(list)
		if *l.dst == nil {
			*l.dst = fosite.Arguments{}
		}
	}
	var err error
	if req.Form, err = url.ParseQuery(f); err != nil {
		return nil, false, fmt.Errorf("storage: get %s: decode form: %w", t.name, err)
	}
	if session != nil {
		if err := decodeSession(sessionJSON, session); err != nil {
			return nil, false, fmt.Errorf("storage: get %s: decode session: %w", t.name, err)
		}
		req.Session = session
	}
	return &req, active, nil
}

// deleteRequest removes the row under key; a missing row is not an error.
func (s *Store) deleteRequest(ctx context.Context, t *requestTable, key string) error {
	if _, err := s.exec(ctx, t.delete, key); err != nil {
		return fmt.Errorf("storage: delete %s: %w", t.name, err)
	}
	return nil
}
