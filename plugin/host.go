package plugin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/token/jwt"

	"github.com/otpstep/otpstep/provider"
	"github.com/otpstep/otpstep/storage"
)

// Errors of the host-facing API; match them with errors.Is.
var (
	// ErrNoLogin means the browser (or sid) has no live login session: it
	// never began, expired, was ended, or its user is disabled. The host
	// logs the user in and calls BeginLogin.
	ErrNoLogin = errors.New("plugin: no login session")
	// ErrSecondFactorPending means CheckAuthorize has answered the browser
	// itself, sending it to the OTP page; the host writes nothing more.
	ErrSecondFactorPending = errors.New("plugin: the browser was sent to the OTP page")
	// ErrUserDisabled means the user was disabled in otpstep
	// (otpstep users disable ID); BeginLogin refuses it.
	ErrUserDisabled = errors.New("plugin: user disabled")
)

// User is a user the host authenticated: its own id (kept as otpstep's user
// id; use uuids, as the user API's PUT /sessions takes a uuid userId) and
// the address the codes are emailed to.
type User struct {
	ID    string
	Email string
}

// Claims are what the host puts in the tokens it issues for a login
// session: sid, auth_time, acr (aal1 after the first factor, aal2 after the
// OTP) and amr (RFC 8176: ["pwd"], then ["pwd","otp"]).
type Claims struct {
	SessionID string
	// Subject is the user's id (User.ID).
	Subject  string
	AuthTime time.Time
	ACR      string
	AMR      []string
	// SecondFactor says whether the session passed the OTP.
	SecondFactor bool
}

// Apply writes the claims into ID token claims (and so into an
// openid.DefaultSession the host issues tokens with): sid in Extra (where
// the user API finds it in access tokens by default), auth_time, acr, amr.
func (c *Claims) Apply(to *jwt.IDTokenClaims) {
	if to.Extra == nil {
		to.Extra = map[string]interface{}{}
	}
	to.Extra["sid"] = c.SessionID
	to.AuthTime = c.AuthTime
	to.AuthenticationContextClassReference = c.ACR
	to.AuthenticationMethodsReferences = slices.Clone(c.AMR)
}

func claimsOf(ls *storage.LoginSession) *Claims {
	return &Claims{
		SessionID:    ls.ID,
		Subject:      ls.UserID,
		AuthTime:     ls.AuthTime.UTC(),
		ACR:          provider.ACR(ls),
		AMR:          provider.AMR(ls),
		SecondFactor: ls.PassedLoginOTP,
	}
}

// SyncUser makes sure otpstep knows the host's user (id and email), so that
// login sessions, the codes' emails and the user API's bearer tokens can
// refer to it. BeginLogin does it itself; a host whose login UI creates
// sessions through PUT /sessions calls it when a user signs in.
func (p *Plugin) SyncUser(ctx context.Context, u User) error {
	_, err := p.syncUser(ctx, u)
	return err
}

func (p *Plugin) syncUser(ctx context.Context, u User) (*storage.User, error) {
	if u.ID == "" {
		return nil, errors.New("plugin: User.ID is empty")
	}
	if !strings.Contains(u.Email, "@") {
		return nil, fmt.Errorf("plugin: User.Email %q is not an email address", u.Email)
	}
	su := &storage.User{ID: u.ID, Email: u.Email}
	if err := p.store.UpsertExternalUser(ctx, su); err != nil {
		return nil, err
	}
	if su.Disabled {
		return nil, fmt.Errorf("%w: %s", ErrUserDisabled, u.ID)
	}
	return su, nil
}

// BeginLogin starts a login session for a user the host has just
// authenticated (its first factor: amr, default "pwd") and returns its sid.
// The session has not passed the second factor yet (acr aal1).
//
// With w, the browser is bound to the session by otpstep's session cookie
// (login.cookie_name, path /, HttpOnly, SameSite=Lax), unless the host keeps
// the sid itself (Options.SessionFromRequest). The browser's previous login
// session, if r carries one, ends (no session fixation). w and r may be nil
// for a login without a browser, whose sid the host hands to a login UI.
func (p *Plugin) BeginLogin(ctx context.Context, w http.ResponseWriter, r *http.Request, u User, amr ...string) (string, error) {
	user, err := p.syncUser(ctx, u)
	if err != nil {
		return "", err
	}
	if len(amr) == 0 {
		amr = []string{provider.AMRPassword}
	}
	if r != nil {
		if old, _, err := p.web.LoginSessionOf(r); err == nil {
			_ = p.Provider.EndLoginSession(ctx, old.ID)
		}
	}
	ls, err := p.Provider.StartLoginSession(ctx, user.ID, amr...)
	if err != nil {
		return "", err
	}
	_ = p.Provider.Audit(ctx, provider.AuditEvent{Type: "login.passed", UserID: user.ID, SessionID: ls.ID, Detail: map[string]any{"by": "host", "amr": amr}})
	if w != nil && p.embeddedCookie() {
		if err := p.web.SetLoginCookie(w, ls); err != nil {
			return "", err
		}
	}
	return ls.ID, nil
}

// EndLogin ends the browser's login session (logout) and removes otpstep's
// session cookie. Without a session it only removes the cookie.
func (p *Plugin) EndLogin(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	if ls, _, err := p.web.LoginSessionOf(r); err == nil {
		if err := p.Provider.EndLoginSession(ctx, ls.ID); err != nil {
			return err
		}
		_ = p.Provider.Audit(ctx, provider.AuditEvent{Type: "session.ended", UserID: ls.UserID, SessionID: ls.ID, Detail: map[string]any{"by": "host"}})
	}
	if w != nil && p.embeddedCookie() {
		p.web.ClearLoginCookie(w)
	}
	return nil
}

// embeddedCookie is whether the plugin's cookie binds browsers to sessions.
func (p *Plugin) embeddedCookie() bool { return !p.hostKeepsSID }

// SessionClaims are the claims of login session sid, for the tokens the host
// issues (ErrNoLogin when it is gone).
func (p *Plugin) SessionClaims(ctx context.Context, sid string) (*Claims, error) {
	ls, _, err := p.Provider.LoginSession(ctx, sid)
	if errors.Is(err, provider.ErrLoginSessionGone) {
		return nil, fmt.Errorf("%w: %v", ErrNoLogin, err)
	}
	if err != nil {
		return nil, err
	}
	return claimsOf(ls), nil
}

// claimsKey keys the claims RequireSecondFactor puts in a request's
// context; it carries the plugin, so two plugins never read each other's.
type claimsKey struct{ p *Plugin }

// ClaimsFrom returns the claims RequireSecondFactor put in the request
// context: the browser's login session, which has passed the second factor
// when the request needs it. false: no login session (log the user in).
func (p *Plugin) ClaimsFrom(ctx context.Context) (*Claims, bool) {
	c, ok := ctx.Value(claimsKey{p}).(*Claims)
	return c, ok
}

// RequireSecondFactor wraps the host's authorize endpoint (a path in
// Options.AuthorizePaths). It parses the authorize request with the host's
// fosite and holds it until the browser's login session has passed the
// second factor:
//
//   - no login session: next runs without claims (ClaimsFrom is false), and
//     the host sends the browser to its login, which calls BeginLogin and
//     comes back here;
//   - a session that has not passed and a request that needs it
//     (Options.SecondFactorRequired, or acr_values=aal2): the code is
//     emailed and the browser goes to the OTP page, which sends it back to
//     this very request once the code is accepted; with prompt=none the
//     host's fosite answers login_required instead;
//   - otherwise next runs with the session's claims in the context
//     (ClaimsFrom), to issue the code with.
//
// A request fosite refuses is passed to next untouched, to answer as the host
// does.
func (p *Plugin) RequireSecondFactor(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		ar, err := p.oauth2.NewAuthorizeRequest(ctx, r)
		if err != nil {
			next.ServeHTTP(w, r)
			return
		}
		claims, err := p.CheckAuthorize(w, r, ar)
		switch {
		case err == nil:
			next.ServeHTTP(w, r.WithContext(context.WithValue(ctx, claimsKey{p}, claims)))
		case errors.Is(err, ErrNoLogin):
			next.ServeHTTP(w, r)
		case errors.Is(err, ErrSecondFactorPending):
		default:
			var rfc *fosite.RFC6749Error
			if !errors.As(err, &rfc) {
				p.log.ErrorContext(ctx, "plugin: holding the authorize request failed", "path", r.URL.Path, "err", err)
				err = fosite.ErrServerError.WithWrap(err)
			}
			p.oauth2.WriteAuthorizeError(ctx, w, ar, err)
		}
	})
}

// CheckAuthorize is RequireSecondFactor for a host that parses the
// authorize request itself (ar, from its fosite's NewAuthorizeRequest). It
// returns the claims of the browser's login session when the request may
// be answered now, or:
//
//   - ErrNoLogin: no login session; log the user in (BeginLogin) and come
//     back;
//   - ErrSecondFactorPending: the browser was sent to the OTP page (a code
//     is on its way); write nothing more;
//   - fosite.ErrLoginRequired (prompt=none and the second factor is
//     missing): answer it with WriteAuthorizeError;
//   - another error: something failed; nothing was written.
func (p *Plugin) CheckAuthorize(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester) (*Claims, error) {
	ls, user, err := p.web.LoginSessionOf(r)
	if errors.Is(err, provider.ErrLoginSessionGone) {
		return nil, fmt.Errorf("%w: %v", ErrNoLogin, err)
	}
	if err != nil {
		return nil, err
	}
	if ls.PassedLoginOTP || !p.needsSecondFactor(ar) {
		return claimsOf(ls), nil
	}
	// OIDC Core §3.1.2.1: with prompt=none the server must not show a page.
	if slices.Contains(strings.Fields(ar.GetRequestForm().Get("prompt")), "none") {
		return nil, fosite.ErrLoginRequired.WithHint("The login needs its second factor.")
	}
	// fosite keeps nothing between redirects: the OTP page sends the browser
	// back to the same request, re-parsed then.
	returnTo := r.URL.RequestURI()
	if r.Method != http.MethodGet {
		returnTo = r.URL.EscapedPath() + "?" + ar.GetRequestForm().Encode()
	}
	clientID := ""
	if c := ar.GetClient(); c != nil {
		clientID = c.GetID()
	}
	if err := p.web.SendToOTP(w, r, ls, user, clientID, returnTo); err != nil {
		return nil, err
	}
	return nil, ErrSecondFactorPending
}

// needsSecondFactor is Options.SecondFactorRequired (default: always), and
// always for acr_values=aal2.
func (p *Plugin) needsSecondFactor(ar fosite.AuthorizeRequester) bool {
	if slices.Contains(strings.Fields(ar.GetRequestForm().Get("acr_values")), provider.ACRSecondFactor) {
		return true
	}
	return p.required == nil || p.required(ar)
}
