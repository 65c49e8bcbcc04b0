package provider

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/ory/fosite"

	"github.com/otpstep/otpstep/storage"
)

// ErrNoBearer means the request carried no usable bearer token; ErrTokenInactive
// that the token is unknown, expired, revoked or not an access token.
var (
	ErrNoBearer      = errors.New("no bearer token")
	ErrTokenInactive = errors.New("token inactive")
)

// Principal is who a bearer token speaks for.
type Principal struct {
	Subject   string // user id, or client id for client credentials
	ClientID  string
	SessionID string // sid of the login session, "" for client credentials
	Scopes    fosite.Arguments
	// LoginUI: the token's client is a login UI (see OTPRequest.LoginUI).
	LoginUI bool
	// User is the user Subject names when the token read brought it along
	// (storage.WithSubjectUser: otpstep's own storage, outside a
	// transaction); nil when it did not or there is none: read it then.
	User *storage.User
}

// LoginUIClient is a fosite.Client that says whether it is a login UI;
// storage.Client is one (its LoginUI field).
type LoginUIClient interface {
	IsLoginUI() bool
}

// IsLoginUI is the default Host.LoginUI: a client that is a LoginUIClient
// and says so. Any other client is not a login UI.
func IsLoginUI(c fosite.Client) bool {
	lc, ok := c.(LoginUIClient)
	return ok && lc.IsLoginUI()
}

// BearerToken extracts the token of an "Authorization: Bearer" header
// (RFC 6750 §2.1; the scheme is case-insensitive).
func BearerToken(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// AuthenticateBearer checks an access token by in-process introspection:
// otpstep's own fosite, or the embedding host's (Options.Host). Refresh
// tokens are refused: fosite's IntrospectToken falls back to them, so the
// token use must be fosite.AccessToken. otpstep's own tokens of an ended
// login session are revoked when it ends; a host's token names an ended
// session → ErrTokenInactive.
func (p *Provider) AuthenticateBearer(ctx context.Context, token string) (*Principal, error) {
	if token == "" {
		return nil, ErrNoBearer
	}
	var su storage.SubjectUser
	use, ar, err := p.bearer.introspector.IntrospectToken(storage.WithSubjectUser(ctx, &su), token, fosite.AccessToken, p.bearer.newSession())
	if err != nil {
		// fosite may keep only the message of a storage error: the
		// request's note (storage.WithUnavailableNote) tells an outage from
		// an inactive token.
		if storage.IsUnavailable(ctx, err) && !errors.Is(err, storage.ErrUnavailable) {
			return nil, fmt.Errorf("introspection: %w: %w", storage.ErrUnavailable, err)
		}
		if errors.Is(err, fosite.ErrServerError) || errors.Is(err, storage.ErrUnavailable) {
			return nil, fmt.Errorf("introspection: %w", err)
		}
		return nil, fmt.Errorf("%w: %v", ErrTokenInactive, err)
	}
	if use != fosite.AccessToken {
		return nil, fmt.Errorf("%w: a %s was presented", ErrTokenInactive, use)
	}
	pr := &Principal{
		Subject:   ar.GetSession().GetSubject(),
		ClientID:  ar.GetClient().GetID(),
		SessionID: p.bearer.sessionID(ar.GetSession()),
		Scopes:    ar.GetGrantedScopes(),
		LoginUI:   p.bearer.loginUI(ar.GetClient()),
	}
	if p.bearer.host && pr.SessionID != "" {
		// A host's token outlives the end of its login session in the
		// host's storage; here it ends with it.
		ended, err := p.store.LoginSessionEnded(ctx, pr.SessionID)
		if err != nil {
			return nil, fmt.Errorf("introspection: %w", err)
		}
		if ended {
			return nil, fmt.Errorf("%w: login session %s ended", ErrTokenInactive, pr.SessionID)
		}
	}
	if su.Read && su.User != nil && su.User.ID == pr.Subject {
		pr.User = su.User
	}
	return pr, nil
}
