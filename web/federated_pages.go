package web

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"time"

	"github.com/gorilla/mux"

	"github.com/otpstep/otpstep/provider"
	"github.com/otpstep/otpstep/provider/upstream"
	"github.com/otpstep/otpstep/storage"
)

// The browser's side of linked identities: linking an upstream account to
// the signed-in user, and signing in with an upstream that allows it. Both
// go to the upstream's authorize endpoint with state, nonce and PKCE (S256)
// and come back to one callback per upstream, so a partner registers a single
// redirect URI.

// Purposes of an upstream flow.
const (
	flowLink  = "link"
	flowLogin = "login"
)

// upstreamFlowLifetime bounds the time between leaving for the upstream and
// coming back.
const upstreamFlowLifetime = 10 * time.Minute

// upstreamFlow is what the browser carries between the redirect to the
// upstream and the callback: sealed (AES-GCM) in a short-lived cookie scoped
// to the upstream's paths, so it cannot be read or changed, and its state is
// redeemed once in the database, so it cannot be replayed.
type upstreamFlow struct {
	Purpose   string `json:"p"`
	Upstream  string `json:"u"`
	State     string `json:"s"`
	Nonce     string `json:"n"`
	Verifier  string `json:"v"`
	SessionID string `json:"sid,omitempty"` // link: the login session that started it (past the second factor)
	ReturnTo  string `json:"r,omitempty"`
	ExpiresAt int64  `json:"exp"`
}

// FederatedLinkPage is the data of the "federated_link" page: the
// confirmation a signed-in user gives before linking starts. Its form posts
// return_to (and the CSRF token) to Action.
type FederatedLinkPage struct {
	Provider string
	// Action is the link route itself, under the mount prefix when embedded.
	Action string
	// ReturnTo is where the browser goes once the link is made; already
	// checked to be local.
	ReturnTo string
	// CSRFField is the hidden CSRF input (csrfField(r)).
	CSRFField template.HTML
}

// FederatedLinkedPage is the data of the "federated_linked" page, shown when
// a link completes with nowhere to return to.
type FederatedLinkedPage struct {
	Provider string
}

// FederatedNotLinkedPage is the data of the "federated_not_linked" page: a
// sign-in with an upstream account no local account is linked to.
type FederatedNotLinkedPage struct {
	Provider string
	// LoginURL signs in with email and password instead, keeping return_to.
	LoginURL string
}

// mountFederatedPages registers the browser routes on the (CSRF-protected)
// pages router: linking, and signing in with an upstream.
func (s *Server) mountFederatedPages(pages *mux.Router) {
	s.mountFederatedLinkPages(pages)
	pages.HandleFunc(PathFederatedIdentities+"{identityProvider}/login", s.federatedLoginStart).Methods(http.MethodGet)
}

// mountFederatedLinkPages registers linking in the browser on the
// (CSRF-protected) pages router: the confirmation page, its Link button,
// and the callback the upstream sends the browser back to.
func (s *Server) mountFederatedLinkPages(pages *mux.Router) {
	pages.HandleFunc(PathFederatedIdentities+"{identityProvider}/link", s.federatedLinkConfirm).Methods(http.MethodGet)
	pages.HandleFunc(PathFederatedIdentities+"{identityProvider}/link", s.federatedLinkStart).Methods(http.MethodPost)
	pages.HandleFunc(PathFederatedIdentities+"{identityProvider}/callback", s.federatedCallback).Methods(http.MethodGet)
}

// partnerLinks are the login page's "Sign in with …" buttons: every upstream
// with allow_login, carrying return_to.
func (s *Server) partnerLinks(returnTo string) []PartnerLink {
	var out []PartnerLink
	for _, up := range s.p.Upstreams().All() {
		if !up.AllowLogin() {
			continue
		}
		u := s.federatedPath(up.Name(), "login")
		if returnTo != "" {
			u += "?" + url.Values{"return_to": {returnTo}}.Encode()
		}
		out = append(out, PartnerLink{Name: up.Name(), URL: u})
	}
	return out
}

// federatedPath is the path of a federated browser route of upstream name
// ("link", "callback"), under the mount prefix when embedded.
func (s *Server) federatedPath(name, route string) string {
	return s.mount.base + PathFederatedIdentities + url.PathEscape(name) + "/" + route
}

func (s *Server) callbackURL(name string) string {
	return s.p.Config().Server.PublicURL + s.federatedPath(name, "callback")
}

func (s *Server) flowCookieName() string { return s.p.Config().Login.CookieName + "_upstream" }

func (s *Server) flowCookiePath(name string) string {
	return s.mount.base + PathFederatedIdentities + name + "/"
}

// federatedLinkConfirm is GET /federated-identities/{identityProvider}/link:
// the confirmation page, whose Link button posts to the same path, for a
// login that linkPrecheck admits. A GET changes nothing and goes nowhere
// but to the login or the OTP page, so a link or an image on another site
// cannot start linking the signed-in user's account.
func (s *Server) federatedLinkConfirm(w http.ResponseWriter, r *http.Request) {
	returnTo, _ := s.safeReturnTo(r.URL.Query().Get("return_to"))
	up, _, ok := s.linkPrecheck(w, r, returnTo)
	if !ok {
		return
	}
	// The Link button's answer redirects to the upstream's authorization
	// endpoint, which browsers check against form-action.
	if authURL, err := up.AuthCodeURL(r.Context(), upstream.Flow{RedirectURI: s.callbackURL(up.Name())}); err == nil {
		if u, err := url.Parse(authURL); err == nil {
			AllowFormActions(w, FormActionSource(u))
		}
	}
	s.pages.Render(w, r, http.StatusOK, "federated_link", FederatedLinkPage{
		Provider: up.Name(), Action: s.federatedPath(up.Name(), "link"), ReturnTo: returnTo, CSRFField: csrfField(r),
	})
}

// federatedLinkStart is POST /federated-identities/{identityProvider}/link,
// the confirmation page's Link button (its CSRF token checked by the pages'
// middleware: 403 without it): linkPrecheck again, then the browser is sent
// to the upstream.
func (s *Server) federatedLinkStart(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, r, http.StatusBadRequest, "error.form", err)
		return
	}
	returnTo, _ := s.safeReturnTo(r.PostForm.Get("return_to"))
	up, ls, ok := s.linkPrecheck(w, r, returnTo)
	if !ok {
		return
	}
	s.startUpstreamFlow(w, r, up, upstreamFlow{Purpose: flowLink, SessionID: ls.ID, ReturnTo: returnTo})
}

// linkPrecheck is what both link routes check first, as a list of steps:
//
//  1. the upstream is configured, else a 404 page;
//  2. the browser has a login session whose login is at most
//     linked_identity.reauth_max_age old, else it goes to /login, coming
//     back to the confirmation page (embedded, where the login is the
//     host's, it gets a 401 page asking to sign in again);
//  3. that session has passed the second factor (PassedLoginOTP, as
//     /oauth2/auth decides it), else a login OTP is on its way and the
//     browser goes to the OTP page (under the mount prefix when embedded),
//     coming back to the confirmation page once the code is right.
//
// false: the answer is written.
func (s *Server) linkPrecheck(w http.ResponseWriter, r *http.Request, returnTo string) (*upstream.Provider, *storage.LoginSession, bool) {
	name := mux.Vars(r)["identityProvider"]
	up, err := s.p.Upstream(name)
	if err != nil {
		s.errorPage(w, r, http.StatusNotFound, "federated.error.not_configured", nil)
		return nil, nil, false
	}
	ls, user, err := s.currentSession(r)
	if err != nil && !errors.Is(err, provider.ErrLoginSessionGone) {
		s.errorPage(w, r, http.StatusInternalServerError, "error.generic", err)
		return nil, nil, false
	}
	here := s.federatedPath(up.Name(), "link")
	if returnTo != "" {
		here += "?" + url.Values{"return_to": {returnTo}}.Encode()
	}
	// Linking changes how the account can be reached: it needs a recent
	// login, not merely a live session, and one past the second factor
	// (provider.LinkSessionReady, the rule the API's PUT applies too).
	ready := s.p.LinkSessionReady(ls)
	if errors.Is(ready, provider.ErrLinkLoginTooOld) {
		if s.p.Embedded() {
			s.errorPage(w, r, http.StatusUnauthorized, "federated.error.reauth",
				errors.New("federated link: no login session, or its login is older than linked_identity.reauth_max_age"), "provider", up.Name())
			return nil, nil, false
		}
		http.Redirect(w, r, PathLogin+"?"+url.Values{"return_to": {here}}.Encode(), http.StatusSeeOther)
		return nil, nil, false
	}
	// A password alone, without the emailed code, must not be enough to tie
	// an upstream account to it.
	if errors.Is(ready, provider.ErrLinkNeedsSecondFactor) {
		if err := s.SendToOTP(w, r, ls, user, "", here); err != nil {
			s.errorPage(w, r, http.StatusInternalServerError, "error.generic", err)
		}
		return nil, nil, false
	}
	return up, ls, true
}

// federatedLoginStart is GET /federated-identities/{identityProvider}/login,
// the "Sign in with …" button; only upstreams with allow_login answer.
func (s *Server) federatedLoginStart(w http.ResponseWriter, r *http.Request) {
	up, err := s.p.Upstream(mux.Vars(r)["identityProvider"])
	if err != nil || !up.AllowLogin() {
		s.errorPage(w, r, http.StatusNotFound, "federated.error.login_not_allowed", nil)
		return
	}
	returnTo, _ := s.safeReturnTo(r.URL.Query().Get("return_to"))
	s.startUpstreamFlow(w, r, up, upstreamFlow{Purpose: flowLogin, ReturnTo: returnTo})
}

// startUpstreamFlow draws state, nonce and PKCE verifier, seals them in the
// flow cookie and redirects to the upstream's authorize endpoint.
func (s *Server) startUpstreamFlow(w http.ResponseWriter, r *http.Request, up *upstream.Provider, f upstreamFlow) {
	f.Upstream = up.Name()
	f.State, f.Nonce, f.Verifier = randomURLToken(), randomURLToken(), randomURLToken()
	f.ExpiresAt = s.p.Now().Add(upstreamFlowLifetime).Unix()
	authURL, err := up.AuthCodeURL(r.Context(), upstream.Flow{RedirectURI: s.callbackURL(up.Name()), State: f.State, Nonce: f.Nonce, Verifier: f.Verifier})
	if err != nil {
		s.upstreamErrorPage(w, r, up.Name(), err)
		return
	}
	if err := s.setFlowCookie(w, f); err != nil {
		s.errorPage(w, r, http.StatusInternalServerError, "error.generic", err)
		return
	}
	http.Redirect(w, r, authURL, http.StatusSeeOther)
}

// flowExpiredMessage answers every callback whose flow cannot be trusted:
// no cookie, a cookie that does not open, a state that differs, a state used
// before. The cause is logged.
const flowExpiredMessage = "federated.error.flow_expired"

// federatedCallback is GET /federated-identities/{identityProvider}/callback,
// as a list of steps: the flow cookie (taken and cleared) → the state matches
// it (RFC 6749 §10.12) → the state is redeemed once for every instance → the
// upstream's answer → the code exchanged with the PKCE verifier → the ID
// token verified with the nonce → link, or sign in.
func (s *Server) federatedCallback(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	name := mux.Vars(r)["identityProvider"]
	up, err := s.p.Upstream(name)
	if err != nil {
		s.errorPage(w, r, http.StatusNotFound, "federated.error.not_configured", nil)
		return
	}
	f, err := s.takeFlowCookie(w, r, name)
	if err != nil {
		s.errorPage(w, r, http.StatusBadRequest, flowExpiredMessage, err)
		return
	}
	q := r.URL.Query()
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(f.State)) != 1 {
		s.errorPage(w, r, http.StatusBadRequest, flowExpiredMessage, errors.New("upstream callback: state does not match the flow cookie"))
		return
	}
	if err := s.p.ConsumeUpstreamState(ctx, f.State, time.Unix(f.ExpiresAt, 0)); err != nil {
		if errors.Is(err, provider.ErrUpstreamStateUsed) {
			s.errorPage(w, r, http.StatusBadRequest, flowExpiredMessage, fmt.Errorf("upstream callback: %w", err))
			return
		}
		s.upstreamErrorPage(w, r, name, err)
		return
	}
	if e := q.Get("error"); e != "" {
		msg := "federated.error.not_completed"
		if e == "access_denied" {
			msg = "federated.error.cancelled"
		}
		s.errorPage(w, r, http.StatusBadRequest, msg, fmt.Errorf("upstream %s answered error %q: %q", name, e, q.Get("error_description")), "provider", name)
		return
	}
	code := q.Get("code")
	if code == "" {
		s.errorPage(w, r, http.StatusBadRequest, flowExpiredMessage, errors.New("upstream callback without a code"))
		return
	}
	flow := upstream.Flow{RedirectURI: s.callbackURL(name), State: f.State, Nonce: f.Nonce, Verifier: f.Verifier}
	switch f.Purpose {
	case flowLink:
		s.completeLink(w, r, up, f, flow, code)
	case flowLogin:
		s.completeLogin(w, r, up, f, flow, code)
	default:
		s.errorPage(w, r, http.StatusBadRequest, flowExpiredMessage, fmt.Errorf("upstream callback: unknown purpose %q", f.Purpose))
	}
}

// completeLink links the upstream subject to the user whose session started
// the flow, if that session is still the browser's and still past the
// second factor.
func (s *Server) completeLink(w http.ResponseWriter, r *http.Request, up *upstream.Provider, f *upstreamFlow, flow upstream.Flow, code string) {
	ctx := r.Context()
	ls, user, err := s.currentSession(r)
	if err != nil && !errors.Is(err, provider.ErrLoginSessionGone) {
		s.errorPage(w, r, http.StatusInternalServerError, "error.generic", err)
		return
	}
	if ls == nil || ls.ID != f.SessionID {
		s.errorPage(w, r, http.StatusUnauthorized, "federated.error.session_ended",
			errors.New("upstream callback: the login session that started the link is gone"))
		return
	}
	// Defence in depth: linkPrecheck started the flow for a session past the
	// second factor, but it may have been sent back since (PUT /sessions
	// with passedLoginOTP false re-challenges it).
	if !ls.PassedLoginOTP {
		s.errorPage(w, r, http.StatusUnauthorized, "federated.error.needs_otp",
			errors.New("upstream callback: the login session that started the link has not passed the second factor"))
		return
	}
	toks, err := up.Exchange(ctx, flow, code)
	if err != nil {
		s.upstreamErrorPage(w, r, up.Name(), err)
		return
	}
	_, err = s.p.LinkWithIDToken(ctx, provider.LinkRequest{
		UserID: user.ID, Upstream: up.Name(), By: provider.LinkByBrowser, SessionID: ls.ID, IP: s.clientIP(r),
	}, toks.IDToken, f.Nonce)
	switch {
	case err == nil:
		s.keepFederatedTokens(r, user.ID, up.Name(), toks)
	case errors.Is(err, provider.ErrIdentityAlreadyLinked):
		s.errorPage(w, r, http.StatusConflict, "federated.error.already_linked", err, "provider", up.Name())
		return
	default:
		s.upstreamErrorPage(w, r, up.Name(), err)
		return
	}
	if f.ReturnTo != "" {
		http.Redirect(w, r, f.ReturnTo, http.StatusSeeOther)
		return
	}
	s.pages.Render(w, r, http.StatusOK, "federated_linked", FederatedLinkedPage{Provider: up.Name()})
}

// completeLogin is the first factor of a sign-in with an upstream: the user
// whose link holds the verified subject gets a fresh login session with
// amr ["fed"], which records the upstream identity; the second factor still
// applies at /oauth2/auth. An unlinked
// subject gets a page saying so; no user is ever matched by email.
func (s *Server) completeLogin(w http.ResponseWriter, r *http.Request, up *upstream.Provider, f *upstreamFlow, flow upstream.Flow, code string) {
	ctx := r.Context()
	toks, err := up.Exchange(ctx, flow, code)
	if err != nil {
		s.upstreamErrorPage(w, r, up.Name(), err)
		return
	}
	user, signedInWith, err := s.p.FederatedLogin(ctx, up.Name(), toks.IDToken, f.Nonce, s.clientIP(r))
	switch {
	case err == nil:
		s.keepFederatedTokens(r, user.ID, up.Name(), toks)
	case errors.Is(err, provider.ErrIdentityNotLinked):
		s.log.InfoContext(ctx, "federated sign-in refused", "request_id", RequestIDFrom(ctx), "upstream", up.Name(), "err", err)
		loginURL := PathLogin
		if f.ReturnTo != "" {
			loginURL += "?" + url.Values{"return_to": {f.ReturnTo}}.Encode()
		}
		s.pages.Render(w, r, http.StatusForbidden, "federated_not_linked", FederatedNotLinkedPage{Provider: up.Name(), LoginURL: loginURL})
		return
	default:
		s.upstreamErrorPage(w, r, up.Name(), err)
		return
	}
	detail := map[string]any{"method": provider.AMRFederated, "provider": up.Name()}
	ls, err := s.BeginLogin(ctx, w, r, user.ID, s.clientIP(r), detail, provider.AMRFederated)
	if err != nil {
		s.errorPage(w, r, http.StatusInternalServerError, "error.generic", err)
		return
	}
	// The session remembers whom it signed in as at the upstream, for the
	// user API's body-less PUT federated-identities/{identityProvider}. A
	// session that could not remember it does not stand.
	signedInWith.SessionID = ls.ID
	if err := s.p.RecordSessionUpstream(ctx, signedInWith); err != nil {
		_ = s.p.EndLoginSession(ctx, ls.ID)
		s.errorPage(w, r, http.StatusInternalServerError, "error.generic", err)
		return
	}
	if f.ReturnTo == "" {
		s.pages.Render(w, r, http.StatusOK, "logged_in", LoggedInPage{Email: user.Email, AuthenticatorURL: s.mount.base + PathSettingsTOTP})
		return
	}
	http.Redirect(w, r, f.ReturnTo, http.StatusSeeOther)
}

// keepFederatedTokens keeps the upstream's tokens of a link just made or
// signed in with, for GrantFederatedToken. A failure is logged: the link or
// the sign-in stands, the grant answers 404 until the next exchange.
func (s *Server) keepFederatedTokens(r *http.Request, userID, name string, toks *upstream.Tokens) {
	if err := s.p.KeepFederatedTokens(r.Context(), userID, name, toks); err != nil {
		s.log.ErrorContext(r.Context(), "upstream tokens not kept", "request_id", RequestIDFrom(r.Context()), "upstream", name, "err", err)
	}
}

// upstreamErrorPage answers the errors of talking to an upstream: 503 (with
// Retry-After) when it cannot be reached, 400 when it refused the code or its
// ID token failed a check (the reason is logged, never shown), 500 otherwise.
func (s *Server) upstreamErrorPage(w http.ResponseWriter, r *http.Request, name string, err error) {
	switch {
	case errors.Is(err, upstream.ErrUnavailable):
		setUnavailableRetryAfter(w)
		s.errorPage(w, r, http.StatusServiceUnavailable, "federated.error.unreachable", err, "provider", name)
	case errors.Is(err, upstream.ErrInvalidIDToken), errors.Is(err, upstream.ErrCodeRejected):
		s.errorPage(w, r, http.StatusBadRequest, "federated.error.unverified", err, "provider", name)
	default:
		s.errorPage(w, r, http.StatusInternalServerError, "error.generic", err)
	}
}

// flowAD binds a sealed flow to its cookie and upstream.
func flowAD(name string) []byte { return []byte("upstream-flow\x00" + name) }

func (s *Server) setFlowCookie(w http.ResponseWriter, f upstreamFlow) error {
	plain, err := json.Marshal(f)
	if err != nil {
		return err
	}
	sealed, err := sealCookie(s.flows, plain, flowAD(f.Upstream))
	if err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{
		Name:     s.flowCookieName(),
		Value:    sealed,
		Path:     s.flowCookiePath(f.Upstream),
		MaxAge:   int(upstreamFlowLifetime.Seconds()),
		HttpOnly: true,
		Secure:   s.secure,
		// Lax: the upstream's redirect back is a top-level GET navigation.
		SameSite: http.SameSiteLaxMode,
	})
	return nil
}

// takeFlowCookie opens the flow cookie of upstream name and clears it: a
// flow is used at most once by this browser (and, by its state, at most once
// anywhere).
func (s *Server) takeFlowCookie(w http.ResponseWriter, r *http.Request, name string) (*upstreamFlow, error) {
	http.SetCookie(w, &http.Cookie{Name: s.flowCookieName(), Value: "", Path: s.flowCookiePath(name), MaxAge: -1,
		HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode})
	c, err := r.Cookie(s.flowCookieName())
	if err != nil {
		return nil, errors.New("upstream callback: no flow cookie")
	}
	plain, err := openCookie(s.flows, c.Value, flowAD(name))
	if err != nil {
		return nil, fmt.Errorf("upstream callback: flow cookie: %w", err)
	}
	var f upstreamFlow
	if err := json.Unmarshal(plain, &f); err != nil {
		return nil, fmt.Errorf("upstream callback: flow cookie: %w", err)
	}
	if f.Upstream != name || f.State == "" {
		return nil, errors.New("upstream callback: flow cookie of another upstream")
	}
	if !s.p.Now().Before(time.Unix(f.ExpiresAt, 0)) {
		return nil, errors.New("upstream callback: flow expired")
	}
	return &f, nil
}

// randomURLToken is 256 random bits, base64url: a state, a nonce, or a PKCE
// verifier (RFC 7636 §4.1: 43 characters of the unreserved set).
func randomURLToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}
