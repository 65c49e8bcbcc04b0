package web

import (
	"errors"
	"log/slog"
	"net/http"
	"net/url"

	"github.com/otpstep/otpstep/provider"
)

// genericLoginError is the catalog key of every failed first factor.
const genericLoginError = "login.error.credentials"

// loginForm is GET /login.
//
// A browser already signed in reaches it when the app asks for a new login
// (prompt=login, max_age) or by hand: the page names the account and asks
// for its password again ("Continue as …"), or offers the empty form ("Use
// another account", ?account=other). It never continues without a password:
// the login the app asked for is the one about to happen.
func (s *Server) loginForm(w http.ResponseWriter, r *http.Request) {
	returnTo, _ := s.safeReturnTo(r.URL.Query().Get("return_to"))
	page := LoginPage{ReturnTo: returnTo, CSRFField: csrfField(r), Partners: s.partnerLinks(returnTo), ClientName: s.clientNameOf(r, returnTo),
		RecoverURL: s.recoveryURL(PathRecover, returnTo)}
	if r.URL.Query().Get("account") != "other" {
		if _, user, err := s.currentSession(r); err == nil {
			page.SignedInAs, page.Email = user.Email, user.Email
			q := url.Values{"account": {"other"}}
			if returnTo != "" {
				q.Set("return_to", returnTo)
			}
			page.OtherURL = s.mount.base + PathLogin + "?" + q.Encode()
		}
	}
	s.renderLeadingTo(w, r, http.StatusOK, "login", page, returnTo)
}

// clientNameOf names the app of the authorize request carried in returnTo
// (its client_id), for "Sign in to continue to Acme"; "" when there is none
// or it is not one of otpstep's clients.
func (s *Server) clientNameOf(r *http.Request, returnTo string) string {
	id := clientIDOf(returnTo)
	if id == "" {
		return ""
	}
	c, err := s.p.Client(r.Context(), id)
	if err != nil {
		return ""
	}
	return c.Name
}

// login is POST /login, the first factor: email and password, limited per
// account and per IP. Every failure shows the same message; the cause is logged.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, r, http.StatusBadRequest, "error.form", err)
		return
	}
	email := r.PostForm.Get("email")
	returnTo, _ := s.safeReturnTo(r.PostForm.Get("return_to"))
	page := LoginPage{Email: email, ReturnTo: returnTo, CSRFField: csrfField(r), Partners: s.partnerLinks(returnTo), ClientName: s.clientNameOf(r, returnTo),
		RecoverURL: s.recoveryURL(PathRecover, returnTo)}
	user, err := s.p.Authenticate(ctx, email, r.PostForm.Get("password"), s.clientIP(r))
	var tooMany *provider.TooManyAttemptsError
	switch {
	case errors.As(err, &tooMany):
		s.logLimited(r, tooMany)
		setRetryAfter(w, tooMany)
		page.Error = s.limitMessage(r, tooMany)
		s.renderLeadingTo(w, r, http.StatusTooManyRequests, "login", page, returnTo)
		return
	case errors.Is(err, provider.ErrInvalidCredentials):
		s.log.InfoContext(ctx, "login failed", "request_id", RequestIDFrom(ctx), loginFailureAttr(err), "ip", s.clientIP(r))
		_ = s.p.Audit(ctx, provider.AuditEvent{Type: provider.AuditLoginFailed, IP: s.clientIP(r), Detail: map[string]any{"email": email}})
		page.Error = s.pages.Locale(r).T(genericLoginError)
		s.renderLeadingTo(w, r, http.StatusUnauthorized, "login", page, returnTo)
		return
	case err != nil:
		s.errorPage(w, r, http.StatusInternalServerError, "error.generic", err)
		return
	}
	if _, err := s.BeginLogin(ctx, w, r, user.ID, s.clientIP(r), nil, provider.AMRPassword); err != nil {
		s.errorPage(w, r, http.StatusInternalServerError, "error.generic", err)
		return
	}
	if returnTo == "" {
		s.pages.Render(w, r, http.StatusOK, "logged_in", LoggedInPage{Email: user.Email, AuthenticatorURL: s.mount.base + PathSettingsTOTP})
		return
	}
	http.Redirect(w, r, returnTo, http.StatusSeeOther)
}

// logoutForm asks for confirmation: logging out is a POST, never a GET side effect.
// A browser without a login session is told it is signed out: "Sign out?"
// would ask about nothing.
func (s *Server) logoutForm(w http.ResponseWriter, r *http.Request) {
	if _, _, err := s.currentSession(r); errors.Is(err, provider.ErrLoginSessionGone) {
		s.pages.Render(w, r, http.StatusOK, "logged_out", nil)
		return
	}
	s.pages.Render(w, r, http.StatusOK, "logout_confirm", LogoutPage{CSRFField: csrfField(r)})
}

// logout ends the login session and clears the cookie. It is also the
// confirmation of an RP-initiated logout (endSession), whose parameters it
// checks again first and whose redirect URI it then goes to.
func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, r, http.StatusBadRequest, "error.form", err)
		return
	}
	if lo, ok := s.checkLogout(w, r, r.Form); ok {
		s.logOut(w, r, lo)
	}
}

// logOut ends the browser's login session, clears its cookie and sends it
// on (signedOut).
func (s *Server) logOut(w http.ResponseWriter, r *http.Request, lo *provider.Logout) {
	if ls, _, err := s.currentSession(r); err == nil {
		if err := s.p.EndLoginSession(r.Context(), ls.ID); err != nil {
			s.errorPage(w, r, http.StatusInternalServerError, "error.generic", err)
			return
		}
		_ = s.p.Audit(r.Context(), provider.AuditEvent{Type: provider.AuditSessionEnded, UserID: ls.UserID, SessionID: ls.ID, IP: s.clientIP(r)})
	}
	s.clearSessionCookie(w)
	s.signedOut(w, r, lo)
}

// logLimited is the one line of every 429: the limit key, whom it counted
// (user id or IP) and when to come back (TooManyAttemptsError.LogValue).
func (s *Server) logLimited(r *http.Request, e *provider.TooManyAttemptsError) {
	s.log.LogAttrs(r.Context(), slog.LevelWarn, "rate limited", slog.String("request_id", RequestIDFrom(r.Context())),
		slog.Int("status", http.StatusTooManyRequests), slog.String("path", r.URL.Path), slog.Any("", e))
}

// loginFailureAttr is why a first factor failed and, when the account
// exists, whose: the reason and user_id of a *provider.CredentialsError
// (inlined), never the email or the password.
func loginFailureAttr(err error) slog.Attr {
	var ce *provider.CredentialsError
	if errors.As(err, &ce) {
		return slog.Any("", ce)
	}
	return slog.String("reason", err.Error())
}
