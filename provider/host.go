package provider

import (
	"context"

	"github.com/ory/fosite"
)

// Introspector checks a token as fosite.OAuth2Provider.IntrospectToken does
// (every fosite.OAuth2Provider is one).
type Introspector interface {
	IntrospectToken(ctx context.Context, token string, tokenUse fosite.TokenUse, session fosite.Session, scope ...string) (fosite.TokenUse, fosite.AccessRequester, error)
}

// Host is an embedding host's authorization server. With Options.Host set,
// the host issues every token: the provider composes no fosite and keeps no
// signing keys of its own (OAuth2, Fosite and Keys are nil, and the OAuth2
// endpoints must not be served), while login sessions, the second factor
// and the outbox work as in standalone mode, and bearer tokens are checked
// with the host's introspection.
type Host struct {
	// OAuth2 introspects the host's access tokens: its fosite.OAuth2Provider,
	// composed with compose.OAuth2TokenIntrospectionFactory. Required.
	OAuth2 Introspector
	// NewSession is the empty session a token's stored session is hydrated
	// into; nil is EmptySession (an *openid.DefaultSession).
	NewSession func() fosite.Session
	// SessionID finds the login session's sid in a token's session; nil is
	// SessionID (a SessionIDCarrier, else the ID token claim Extra["sid"]).
	SessionID func(fosite.Session) string
	// LoginUI says whether a host client is a login UI, which may pass the
	// second factor through the user API and receive login codes in its
	// responses; nil is IsLoginUI (a LoginUIClient that says so; no other
	// client is).
	LoginUI func(fosite.Client) bool
}

// SessionIDCarrier is a fosite session that knows the sid of the login
// session it was issued to. A host whose sessions do not keep the sid in
// the ID token claims' Extra["sid"] can implement it.
type SessionIDCarrier interface {
	SessionID() string
}

// bearerCheck is how AuthenticateBearer checks a token: the provider's own
// fosite, or the host's.
type bearerCheck struct {
	introspector Introspector
	newSession   func() fosite.Session
	sessionID    func(fosite.Session) string
	loginUI      func(fosite.Client) bool
	// host: the tokens are the host's, in its storage, which ending a login
	// session does not revoke; their sid is checked on every use instead.
	host bool
}

func newBearerCheck(own fosite.OAuth2Provider, host *Host) bearerCheck {
	if host == nil {
		return bearerCheck{introspector: own, newSession: func() fosite.Session { return EmptySession() }, sessionID: SessionID, loginUI: IsLoginUI}
	}
	b := bearerCheck{introspector: host.OAuth2, newSession: host.NewSession, sessionID: host.SessionID, loginUI: host.LoginUI, host: true}
	if b.newSession == nil {
		b.newSession = func() fosite.Session { return EmptySession() }
	}
	if b.sessionID == nil {
		b.sessionID = SessionID
	}
	if b.loginUI == nil {
		b.loginUI = IsLoginUI
	}
	return b
}
