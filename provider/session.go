package provider

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/token/jwt"

	"github.com/otpstep/otpstep/storage"
)

// Authentication Method Reference values (RFC 8176 §2) and the assurance
// levels (NIST SP 800-63B) otpstep puts in acr.
const (
	AMRPassword  = "pwd"
	AMROTP       = "otp"
	AMRFederated = "fed"

	ACRPassword     = "aal1"
	ACRSecondFactor = "aal2"
)

// ErrLoginSessionGone means the login session expired, was logged out or
// never existed.
var ErrLoginSessionGone = errors.New("login session gone")

// StartLoginSession creates the login session (the sid) after a first factor,
// with a fresh browser key for its cookie (ls.BrowserKey).
func (p *Provider) StartLoginSession(ctx context.Context, userID string, amr ...string) (*storage.LoginSession, error) {
	now := p.clock().UTC()
	ls := &storage.LoginSession{
		UserID:    userID,
		AMR:       amr,
		AuthTime:  now,
		ExpiresAt: now.Add(p.cfg.Login.SessionLifespan),
	}
	if err := p.issueBrowserKey(ls); err != nil {
		return nil, err
	}
	if err := p.store.CreateLoginSession(ctx, ls); err != nil {
		return nil, err
	}
	return ls, nil
}

// LoginSession loads a live login session and its (enabled) user.
func (p *Provider) LoginSession(ctx context.Context, sid string) (*storage.LoginSession, *storage.User, error) {
	if sid == "" {
		return nil, nil, ErrLoginSessionGone
	}
	ls, err := p.store.GetLoginSession(ctx, sid)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil, ErrLoginSessionGone
	}
	if err != nil {
		return nil, nil, err
	}
	if !p.clock().Before(ls.ExpiresAt) {
		return nil, nil, ErrLoginSessionGone
	}
	u, err := p.store.GetUser(ctx, ls.UserID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil, ErrLoginSessionGone
	}
	if err != nil {
		return nil, nil, err
	}
	if u.Disabled {
		return nil, nil, fmt.Errorf("%w: user disabled", ErrLoginSessionGone)
	}
	return ls, u, nil
}

// EndLoginSession logs a session out for good, in one transaction: the sid
// can never be used again (not by its cookie, nor PUT /sessions, nor a
// verification), and every code and token issued under it is revoked
// (storage.EndLoginSession). An unknown or already ended sid is not an error.
func (p *Provider) EndLoginSession(ctx context.Context, sid string) error {
	err := p.store.EndLoginSession(ctx, sid)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err == nil {
		p.notifyLogouts() // the back-channel logouts the end queued
	}
	return err
}

// browserKeyBytes is the size of the key a session cookie carries.
const browserKeyBytes = 32

// issueBrowserKey makes a new cookie key for ls: ls.BrowserKey in clear (for
// the cookie), ls.BrowserKeyHash to store.
func (p *Provider) issueBrowserKey(ls *storage.LoginSession) error {
	key, err := randomToken(p.random, browserKeyBytes)
	if err != nil {
		return fmt.Errorf("browser key: %w", err)
	}
	ls.BrowserKey, ls.BrowserKeyHash = key, browserKeyHash(key)
	return nil
}

func browserKeyHash(key string) []byte {
	h := sha256.Sum256([]byte(key))
	return h[:]
}

// BrowserLoginSession is LoginSession for a browser whose session cookie
// carries sid and key: the key must be the session's current one, so a copy
// of the cookie from before a step up (a new key) opens nothing.
func (p *Provider) BrowserLoginSession(ctx context.Context, sid, key string) (*storage.LoginSession, *storage.User, error) {
	ls, u, err := p.LoginSession(ctx, sid)
	if err != nil {
		return nil, nil, err
	}
	if len(ls.BrowserKeyHash) == 0 || subtle.ConstantTimeCompare(ls.BrowserKeyHash, browserKeyHash(key)) != 1 {
		return nil, nil, fmt.Errorf("%w: the cookie's key is not the session's", ErrLoginSessionGone)
	}
	return ls, u, nil
}

// ACR is the assurance level a login session has reached.
func ACR(ls *storage.LoginSession) string {
	if ls.PassedLoginOTP {
		return ACRSecondFactor
	}
	return ACRPassword
}

// AMR is the session's method list, with otp once the second factor passed.
func AMR(ls *storage.LoginSession) []string {
	amr := slices.Clone(ls.AMR)
	if ls.PassedLoginOTP && !slices.Contains(amr, AMROTP) {
		amr = append(amr, AMROTP)
	}
	return amr
}

// NewSession is the fosite session for tokens issued to a login session: the
// subject is the user id, and the ID token carries sid, auth_time, acr and amr.
func (p *Provider) NewSession(ls *storage.LoginSession, requestedAt time.Time) *openid.DefaultSession {
	return &openid.DefaultSession{
		Subject: ls.UserID,
		Claims: &jwt.IDTokenClaims{
			Issuer:                              p.Issuer(),
			Subject:                             ls.UserID,
			RequestedAt:                         requestedAt.UTC(),
			AuthTime:                            ls.AuthTime.UTC(),
			AuthenticationContextClassReference: ACR(ls),
			AuthenticationMethodsReferences:     AMR(ls),
			Extra:                               map[string]interface{}{"sid": ls.ID},
		},
		Headers: &jwt.Headers{},
	}
}

// EmptySession is what fosite hydrates stored sessions into.
func EmptySession() *openid.DefaultSession {
	return &openid.DefaultSession{Claims: &jwt.IDTokenClaims{}, Headers: &jwt.Headers{}}
}

// SessionID returns the sid a token's session carries ("" for none): the
// session's own when it is a SessionIDCarrier, else the ID token claim
// Extra["sid"] of an openid.Session (as NewSession sets it).
func SessionID(s fosite.Session) string {
	switch s := s.(type) {
	case SessionIDCarrier:
		return s.SessionID()
	case *openid.DefaultSession:
		if s == nil || s.Claims == nil {
			return ""
		}
		sid, _ := s.Claims.Extra["sid"].(string)
		return sid
	case openid.Session:
		if c := s.IDTokenClaims(); c != nil {
			sid, _ := c.Extra["sid"].(string)
			return sid
		}
	}
	return ""
}

// PrecheckAuthorize applies the prompt rules (CheckPrompt) and the PKCE
// policy before the user is asked to log in, so a request that would be
// refused after the login is refused at once (the same rules hold again
// when the code is issued).
// RFC 7636 §4.4.1 and RFC 9700 §2.1.1: S256 only, required for public
// clients and, with oauth2.enforce_pkce=all, for every client.
func (p *Provider) PrecheckAuthorize(ar fosite.AuthorizeRequester) error {
	if err := CheckPrompt(ar.GetRequestForm()); err != nil {
		return err
	}
	challenge := ar.GetRequestForm().Get("code_challenge")
	method := ar.GetRequestForm().Get("code_challenge_method")
	if challenge == "" {
		if p.cfg.OAuth2.EnforcePKCE == "all" || ar.GetClient().IsPublic() {
			return fosite.ErrInvalidRequest.WithHint("Clients must include a code_challenge when performing the authorize code flow, but it is missing.")
		}
		return nil
	}
	if method != "S256" {
		return fosite.ErrInvalidRequest.WithHint("Clients must use code_challenge_method=S256; plain is not allowed.")
	}
	return nil
}
