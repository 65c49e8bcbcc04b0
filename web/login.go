package web

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/otpstep/otpstep/provider"
)

// genericLoginError is the catalog key of every failed first factor.
const genericLoginError = "login.error.credentials"

// loginForm is GET /login.
func (s *Server) loginForm(w http.ResponseWriter, r *http.Request) {
	returnTo, _ := safeReturnTo(r.URL.Query().Get("return_to"))
	s.renderLeadingTo(w, r, http.StatusOK, "login", LoginPage{ReturnTo: returnTo, CSRFField: csrfField(r), Partners: s.partnerLinks(returnTo)}, returnTo)
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
	returnTo, _ := safeReturnTo(r.PostForm.Get("return_to"))
	page := LoginPage{Email: email, ReturnTo: returnTo, CSRFField: csrfField(r), Partners: s.partnerLinks(returnTo)}
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
		s.pages.Render(w, r, http.StatusOK, "logged_in", LoggedInPage{Email: user.Email})
		return
	}
	http.Redirect(w, r, returnTo, http.StatusSeeOther)
}

// logoutForm asks for confirmation: logging out is a POST, never a GET side effect.
func (s *Server) logoutForm(w http.ResponseWriter, r *http.Request) {
	s.pages.Render(w, r, http.StatusOK, "logout_confirm", LogoutPage{CSRFField: csrfField(r)})
}

// logout ends the login session and clears the cookie.
func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if ls, _, err := s.currentSession(r); err == nil {
		if err := s.p.EndLoginSession(r.Context(), ls.ID); err != nil {
			s.errorPage(w, r, http.StatusInternalServerError, "error.generic", err)
			return
		}
		_ = s.p.Audit(r.Context(), provider.AuditEvent{Type: provider.AuditSessionEnded, UserID: ls.UserID, SessionID: ls.ID, IP: s.clientIP(r)})
	}
	s.clearSessionCookie(w)
	s.pages.Render(w, r, http.StatusOK, "logged_out", nil)
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
