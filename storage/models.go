package storage

import (
	"encoding/json"
	"errors"
	"time"

	jose3 "github.com/go-jose/go-jose/v3"
	"github.com/ory/fosite"
)

// Sentinel errors. Callers match them with errors.Is. Methods that implement a
// fosite interface return errors that also match fosite.ErrNotFound.
var (
	ErrNotFound      = errors.New("storage: not found")
	ErrAlreadyExists = errors.New("storage: already exists")
	// ErrUnavailable marks a failure to reach the database at all (connection
	// refused or lost, database missing or closed, file not openable), as
	// opposed to an error of the statement. The driver error stays in the chain.
	ErrUnavailable = errors.New("storage: database unavailable")
	// ErrSessionRecovered: the login session came from an account recovery
	// by email, so the second factor cannot be passed on it.
	ErrSessionRecovered = errors.New("storage: the login session came from an account recovery")
)

// User is a local account. Email is stored lower-cased and is unique.
type User struct {
	ID           string // uuid
	Email        string
	PasswordHash string // argon2id encoded
	Disabled     bool
	CreatedAt    time.Time
	UpdatedAt    time.Time
	// EmailVerified: the user proved the address (an emailed code passed)
	// or was created verified; the email_verified claim.
	EmailVerified bool
}

// LoginSession is the server side of a browser or API login: one row per sid.
type LoginSession struct {
	ID             string // the sid, a uuid
	UserID         string
	PassedLoginOTP bool
	AMR            []string // RFC 8176 methods, in the order they were passed
	AuthTime       time.Time
	ExpiresAt      time.Time
	CreatedAt      time.Time
	UpdatedAt      time.Time
	// BrowserKeyHash is the SHA-256 of the key the browser's session cookie
	// carries beside the ID (empty: no browser holds the session).
	BrowserKeyHash []byte
	// Recovered: the session was made by an account recovery (a code by
	// email and a new password, ResetPassword). It stays at the first
	// factor: PassLoginSession refuses it.
	Recovered bool
	// BrowserKey is that key in clear, set only on a session the provider
	// has just issued a key for, to put in the cookie; storage never reads
	// or writes it.
	BrowserKey string
}

// Client is an OAuth2 client. It implements fosite.Client and
// fosite.OpenIDConnectClient.
type Client struct {
	ID                      string
	SecretHash              string // "sha256$<hex>" for generated secrets, argon2id encoding for supplied ones, "" for public clients
	Name                    string
	RedirectURIs            []string
	GrantTypes              []string
	ResponseTypes           []string
	Scopes                  []string
	Audience                []string
	Public                  bool
	SkipConsent             bool
	RequireSecondFactor     bool
	TokenEndpointAuthMethod string // client_secret_basic, client_secret_post or none
	CreatedAt               time.Time
	// LoginUI: the client is a login UI, trusted to pass a login session's
	// second factor itself (PUT /sessions/{id} passedLoginOTP:true) and to
	// receive the login OTP in the response.
	LoginUI bool
	// IntrospectAny: the client is a resource server that may introspect
	// every token; any other client only those issued to it or naming it in
	// their audience (RFC 7662 §2.1).
	IntrospectAny bool
	// Client authentication and ID-token signing (OpenID Connect Dynamic
	// Client Registration §2 names): for private_key_jwt (RFC 7523) the
	// client's JWK Set as JSON text or the URL to fetch it from, and the
	// one algorithm its assertions are signed with; the algorithm of its
	// ID tokens ("" = the provider's oauth2.signing_alg).
	JWKS                        string
	JWKSURI                     string
	TokenEndpointAuthSigningAlg string
	IDTokenSignedResponseAlg    string
	// ClientURI is the client's home page (clients create --client-uri), the
	// error pages' way back; "" when not known.
	ClientURI string
	// Logout is the client's logout registration.
	Logout ClientLogout
}

// ClientLogout is what a client registers for logout: the URIs the browser
// may return to after an RP-initiated logout (exact match; OpenID Connect
// RP-Initiated Logout 1.0 §3.1), and its back-channel logout endpoint (""
// for none; Back-Channel Logout 1.0 §2.2).
type ClientLogout struct {
	PostLogoutRedirectURIs           []string
	BackchannelLogoutURI             string
	BackchannelLogoutSessionRequired bool
}

var (
	_ fosite.Client              = (*Client)(nil)
	_ fosite.OpenIDConnectClient = (*Client)(nil)
)

func (c *Client) GetID() string                      { return c.ID }
func (c *Client) GetHashedSecret() []byte            { return []byte(c.SecretHash) }
func (c *Client) GetRedirectURIs() []string          { return c.RedirectURIs }
func (c *Client) GetGrantTypes() fosite.Arguments    { return c.GrantTypes }
func (c *Client) GetResponseTypes() fosite.Arguments { return c.ResponseTypes }
func (c *Client) GetScopes() fosite.Arguments        { return c.Scopes }
func (c *Client) IsPublic() bool                     { return c.Public }
func (c *Client) GetAudience() fosite.Arguments      { return c.Audience }

// IsLoginUI and MayIntrospectAny report the client's permissions (LoginUI,
// IntrospectAny) to code that holds a fosite.Client.
func (c *Client) IsLoginUI() bool        { return c.LoginUI }
func (c *Client) MayIntrospectAny() bool { return c.IntrospectAny }

// OpenID Connect client metadata: fosite's client authentication reads the
// method, the key set (inline or by URL) and the assertion algorithm.
func (c *Client) GetRequestURIs() []string                 { return nil }
func (c *Client) GetJSONWebKeysURI() string                { return c.JWKSURI }
func (c *Client) GetRequestObjectSigningAlgorithm() string { return "" }

// GetJSONWebKeys is the client's registered JWK Set, nil when it has none
// (or, never stored by CreateClient, one that does not parse).
func (c *Client) GetJSONWebKeys() *jose3.JSONWebKeySet {
	if c.JWKS == "" {
		return nil
	}
	var set jose3.JSONWebKeySet
	if err := json.Unmarshal([]byte(c.JWKS), &set); err != nil {
		return nil
	}
	return &set
}

// GetTokenEndpointAuthSigningAlgorithm is the algorithm of the client's
// private_key_jwt assertions; RS256 when none was registered (OpenID Connect
// Dynamic Client Registration §2's default).
func (c *Client) GetTokenEndpointAuthSigningAlgorithm() string {
	if c.TokenEndpointAuthSigningAlg == "" {
		return "RS256"
	}
	return c.TokenEndpointAuthSigningAlg
}

func (c *Client) GetResponseModes() []fosite.ResponseModeType {
	return []fosite.ResponseModeType{fosite.ResponseModeDefault, fosite.ResponseModeQuery}
}
func (c *Client) GetTokenEndpointAuthMethod() string {
	if c.Public {
		return "none"
	}
	if c.TokenEndpointAuthMethod == "" {
		return "client_secret_basic"
	}
	return c.TokenEndpointAuthMethod
}

// SigningKey is one ID-token signing key. The private JWK is sealed by the
// provider before it reaches storage; storage never sees key material in clear.
type SigningKey struct {
	KID          string
	Algorithm    string // RS256 or ES256
	PublicJWK    []byte // JSON of the public JWK
	SealedJWK    []byte // AES-GCM sealed JSON of the private JWK
	CreatedAt    time.Time
	RetiredAt    *time.Time // no longer signs; still published
	PublishUntil *time.Time // set with RetiredAt: when its public key may leave the JWKS
}

// AuditEvent records a security-relevant event.
type AuditEvent struct {
	ID        int64
	At        time.Time
	Type      string // e.g. "login.passed", "login.failed", "session.created"
	UserID    string
	ClientID  string
	SessionID string
	IP        string
	Detail    map[string]any
}

// OTPChallenge is one issued one-time code, stored as a hash. It is live
// while ConsumedAt and BurnedAt are both nil; at most one challenge is live per
// (Kind, UserID, SessionID). Expiry does not end liveness: a live challenge past
// ExpiresAt is rejected (and burned) by the provider.
type OTPChallenge struct {
	ID          string // uuid
	Kind        string // "login" (bound to SessionID) or "account" (SessionID "")
	UserID      string
	SessionID   string // the login session; "" for an account challenge
	ClientID    string // the client the login is for; may be ""
	CodeHash    []byte
	Attempts    int // verification attempts spent
	MaxAttempts int
	ExpiresAt   time.Time
	ConsumedAt  *time.Time // matched and used
	BurnedAt    *time.Time // replaced, exhausted, expired or obsolete
	CreatedAt   time.Time
}

// OutboxMessage is one mail waiting for delivery. Sealed is the AEAD-sealed
// payload (recipient, subject, body); storage never sees it in clear.
type OutboxMessage struct {
	ID          string // uuid; also the associated data of Sealed
	Sealed      []byte
	Attempts    int       // claims so far, the current one included
	AvailableAt time.Time // earliest time the message may be claimed
	CreatedAt   time.Time
	LastError   string // why the previous attempt failed; "" if none did
}

// LinkedIdentity is a user's account at a partner identity provider. A user
// has at most one per Provider, and a (Provider, Subject) belongs to one user.
type LinkedIdentity struct {
	ID        string // uuid
	UserID    string
	Provider  string
	Subject   string // the partner's subject identifier
	Email     string // as the partner reported it; informational
	CreatedAt time.Time
}

// FederatedToken is what the upstream issued for a link (GrantFederatedToken):
// one per (UserID, Provider), deleted with the link. Sealed holds the tokens,
// sealed by the provider and bound to UserID, Provider and Subject; storage
// never sees them in clear. A refresh in progress holds the lease.
type FederatedToken struct {
	UserID            string
	Provider          string
	Subject           string // the upstream account the tokens were issued for
	Sealed            []byte
	RefreshLeaseID    string    // "" when no refresh is in progress
	RefreshLeaseUntil time.Time // zero when no refresh is in progress
	UpdatedAt         time.Time
}

// MigrationStatus is one migration file and whether it is applied.
type MigrationStatus struct {
	Version   int64
	Name      string
	AppliedAt *time.Time
}
