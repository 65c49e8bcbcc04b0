package plugin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"

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
	// ErrReauthRequired means the browser's login session is too old for
	// the authorize request (prompt=login, or its max_age exceeded; OIDC
	// Core §3.1.2.1). It is an ErrNoLogin: the host logs the user in again
	// (BeginLogin starts a new session, aal1 until its code passes) and
	// sends the browser back to ResumeAuthorizeURI, which no longer asks.
	ErrReauthRequired = fmt.Errorf("%w: the request asks for a newer login (prompt=login or max_age)", ErrNoLogin)
	// ErrUserDisabled means the user was disabled in otpstep
	// (otpstep users disable ID); BeginLogin refuses it.
	ErrUserDisabled = errors.New("plugin: user disabled")
	// ErrInvalidUserID means User.ID is not a uuid; BeginLogin and SyncUser
	// refuse it, since the user API takes uuid user ids (PUT /sessions'
	// userId) and would refuse the session's user later.
	ErrInvalidUserID = errors.New("plugin: User.ID is not a uuid")
)

// User is a user the host authenticated: its own id, a uuid in its
// canonical 36-character form (kept as otpstep's user id; the user API's
// PUT /sessions takes a uuid userId, so anything else is refused with
// ErrInvalidUserID) and the address the codes are emailed to.
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

// Apply writes the claims into the session the host issues tokens with
// (an *openid.DefaultSession, or a type of the host's implementing
// openid.Session): the session's own subject (fosite.Session.GetSubject,
// which introspection, and so the user API, reads; set through
// interface{ SetSubject(string) }, as openid.DefaultSession has it), and
// its ID token claims' sub, sid in Extra (where the user API finds it in
// access tokens by default), auth_time, acr and amr.
func (c *Claims) Apply(to openid.Session) {
	if s, ok := to.(interface{ SetSubject(string) }); ok {
		s.SetSubject(c.Subject)
	}
	idt := to.IDTokenClaims()
	if idt.Extra == nil {
		idt.Extra = map[string]interface{}{}
	}
	idt.Subject = c.Subject
	idt.Extra["sid"] = c.SessionID
	idt.AuthTime = c.AuthTime
	idt.AuthenticationContextClassReference = c.ACR
	idt.AuthenticationMethodsReferences = slices.Clone(c.AMR)
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
	if _, err := uuid.Parse(u.ID); err != nil || len(u.ID) != 36 {
		return nil, fmt.Errorf("%w: %q (the user API's PUT /sessions takes uuid userIds)", ErrInvalidUserID, u.ID)
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
	ls, err := p.web.BeginLogin(ctx, w, r, user.ID, "", map[string]any{"by": "host", "amr": amr}, amr...)
	if err != nil {
		return "", err
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
		_ = p.Provider.Audit(ctx, provider.AuditEvent{Type: provider.AuditSessionEnded, UserID: ls.UserID, SessionID: ls.ID, Detail: map[string]any{"by": "host"}})
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

// authorizeKey keys what RequireSecondFactor puts in a request's context;
// it carries the plugin, so two plugins never read each other's.
type authorizeKey struct{ p *Plugin }

// held is what RequireSecondFactor hands to the host's handler: the
// authorize request it parsed, and the login session's claims when there
// is one that may be answered now.
type held struct {
	ar     fosite.AuthorizeRequester
	claims *Claims
}

// ClaimsFrom returns the claims RequireSecondFactor put in the request
// context: the browser's login session, which has passed the second factor
// when the request needs it. false: no login session (log the user in).
func (p *Plugin) ClaimsFrom(ctx context.Context) (*Claims, bool) {
	h, ok := ctx.Value(authorizeKey{p}).(*held)
	if !ok || h.claims == nil {
		return nil, false
	}
	return h.claims, true
}

// AuthorizeRequestFrom returns the authorize request RequireSecondFactor
// parsed with the host's fosite. The host's handler answers with it and
// does not call NewAuthorizeRequest again: fosite consumes a pushed
// request's request_uri (PAR, RFC 9126) when it parses it, so a second
// parse fails with invalid_request_uri. false: next was not called by
// RequireSecondFactor.
func (p *Plugin) AuthorizeRequestFrom(ctx context.Context) (fosite.AuthorizeRequester, bool) {
	h, ok := ctx.Value(authorizeKey{p}).(*held)
	if !ok {
		return nil, false
	}
	return h.ar, true
}

// RequireSecondFactor wraps the host's authorize endpoint (a path in
// Options.AuthorizePaths). It parses the authorize request once with the
// host's fosite, hands it to next (AuthorizeRequestFrom) and holds it until
// the browser's login session has passed the second factor:
//
//   - no login session, or one older than the request admits (prompt=login,
//     an exceeded max_age): next runs without claims (ClaimsFrom is false),
//     and the host sends the browser to its login, which calls BeginLogin,
//     redirects back to ResumeAuthorizeURI and so comes back here; with
//     prompt=none and a session too old, login_required goes to the
//     redirect URI instead and next does not run;
//   - a session that has not passed and a request that needs it
//     (Options.SecondFactorRequired, or acr_values=aal2): the code is
//     emailed and the browser goes to the OTP page, which sends it back to
//     this request (ResumeAuthorizeURI) once the code is accepted; with
//     prompt=none the host's fosite answers login_required instead;
//   - otherwise next runs with the session's claims in the context
//     (ClaimsFrom), to issue the code with.
//
// A request fosite refuses is answered with the host's fosite
// (WriteAuthorizeError) and next does not run: a pushed request cannot be
// parsed twice.
func (p *Plugin) RequireSecondFactor(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		ar, err := p.oauth2.NewAuthorizeRequest(ctx, r)
		if err != nil {
			p.oauth2.WriteAuthorizeError(ctx, w, ar, err)
			return
		}
		claims, err := p.CheckAuthorize(w, r, ar)
		switch {
		case err == nil:
			next.ServeHTTP(w, r.WithContext(context.WithValue(ctx, authorizeKey{p}, &held{ar: ar, claims: claims})))
		case errors.Is(err, ErrNoLogin):
			next.ServeHTTP(w, r.WithContext(context.WithValue(ctx, authorizeKey{p}, &held{ar: ar})))
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

// ResumeAuthorizeURI is the local URI that sends the browser back to the
// authorize request ar that fosite parsed from r: where the host's login
// (after BeginLogin) and the OTP page redirect to. A GET request comes back
// as it came; a POSTed one, or a pushed one (PAR, RFC 9126, whose
// request_uri fosite consumed when it parsed it), with the parameters fosite
// parsed in the query, without the request_uri and any client
// authentication. So a host enforcing PAR (fosite's
// IsPushedAuthorizeEnforced) cannot resume a request its login or the OTP
// page interrupted.
//
// Either way prompt=login and max_age are left out: the login (or the
// second factor after it) that interrupts the request satisfies them, so
// the gate does not ask again when the browser comes back, and the host's
// fosite, which checks both against the auth_time it is given, does not
// refuse the new login (its prompt=login check wants auth_time after the
// request's time).
func ResumeAuthorizeURI(r *http.Request, ar fosite.AuthorizeRequester) string {
	if r.Method == http.MethodGet && !r.URL.Query().Has("request_uri") {
		q := r.URL.Query()
		if !q.Has("max_age") && !provider.ParseAuthorizeParams(q).Prompt("login") {
			return r.URL.RequestURI()
		}
		return r.URL.EscapedPath() + "?" + provider.ReauthSatisfied(q).Encode()
	}
	form := url.Values{}
	for k, v := range provider.ReauthSatisfied(ar.GetRequestForm()) {
		switch k {
		// The client authentication of RFC 6749 §2.3.1 and RFC 7523 §2.2 a
		// pushed request's form holds (the client authenticated at the PAR
		// endpoint) never goes into a browser's URL.
		case "request_uri", "client_secret", "client_assertion", "client_assertion_type":
		default:
			form[k] = slices.Clone(v)
		}
	}
	return r.URL.EscapedPath() + "?" + form.Encode()
}

// CheckAuthorize is RequireSecondFactor for a host that parses the
// authorize request itself (ar, from its fosite's NewAuthorizeRequest). It
// returns the claims of the browser's login session when the request may
// be answered now, or:
//
//   - ErrNoLogin: no login session, or ErrReauthRequired (an ErrNoLogin):
//     the session is older than the request admits (prompt=login, an
//     exceeded max_age); log the user in (BeginLogin) and come back
//     (ResumeAuthorizeURI);
//   - ErrSecondFactorPending: the browser was sent to the OTP page (a code
//     is on its way); write nothing more;
//   - fosite.ErrLoginRequired (prompt=none, and the second factor is
//     missing or the session is too old): answer it with
//     WriteAuthorizeError;
//   - another error: something failed; nothing was written.
func (p *Plugin) CheckAuthorize(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester) (*Claims, error) {
	ls, user, err := p.web.LoginSessionOf(r)
	if errors.Is(err, provider.ErrLoginSessionGone) {
		return nil, fmt.Errorf("%w: %v", ErrNoLogin, err)
	}
	if err != nil {
		return nil, err
	}
	// OIDC Core §3.1.2.1: with prompt=none the server must not show a page.
	promptNone := provider.ParseAuthorizeParams(ar.GetRequestForm()).Prompt("none")
	if provider.NeedsReauthentication(ls, ar.GetRequestForm(), p.Provider.Now()) {
		if promptNone {
			return nil, fosite.ErrLoginRequired.WithHint("The request asks for a newer login (max_age).")
		}
		return nil, ErrReauthRequired
	}
	if ls.PassedLoginOTP || !p.needsSecondFactor(ar) {
		return claimsOf(ls), nil
	}
	if promptNone {
		return nil, fosite.ErrLoginRequired.WithHint("The login needs its second factor.")
	}
	// fosite keeps nothing between redirects: the OTP page sends the browser
	// back to the same request, re-parsed then.
	returnTo := ResumeAuthorizeURI(r, ar)
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
	if provider.ParseAuthorizeParams(ar.GetRequestForm()).AsksSecondFactor() {
		return true
	}
	return p.required == nil || p.required(ar)
}
