package web

import (
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"time"

	"github.com/gorilla/mux"

	"github.com/otpstep/otpstep/provider"
	"github.com/otpstep/otpstep/storage"
)

// Account recovery in the browser ("Forgot password?"), standalone only
// (embedded, the host owns the password): the email form, the emailed
// recovery code, the authenticator code of a user who has one, the new
// password, then the recovered session (provider/recovery.go: aal1, which
// no emailed code lifts). Every form posts and redirects (303) to the next
// page or back to its own (post/redirect/get, so a reload sends nothing);
// what a redirect has to tell travels in the recovery cookie, never in the
// URL.

// RecoveryPage is the data of every recovery page: "recover" (the email
// form), "recover_code", "recover_authenticator", "recover_password",
// "recovered" (done, no return_to) and "recovered_signin" (/login/otp for a
// recovered session, which no emailed code passes).
type RecoveryPage struct {
	// Email is the address the recovery is for (the form's value, the
	// password managers' username).
	Email string
	// Message is a notice (role status), Error the refusal of the last form
	// (role alert), both in the page's language.
	Message string
	Error   string
	// ReturnTo is where the login continues afterwards, already checked to
	// be local; ClientName names its app.
	ReturnTo   string
	ClientName string
	// CSRFField is the hidden CSRF input (csrfField(r)).
	CSRFField template.HTML
	// Action is the page's form target.
	Action string
	// LoginURL is the login page, keeping return_to; RestartURL the email
	// form, keeping return_to.
	LoginURL   string
	RestartURL string
	// MinPasswordLength is the password rule (provider.MinPasswordLength).
	MinPasswordLength int
}

// recoveryState is what the recovery cookie carries between the steps,
// sealed with the session cookie's sealer (sealCookie) under its own name:
// the address asked for, the grant once its code matched, and the flash of
// the last form for the page it redirected to.
type recoveryState struct {
	Email string                  `json:"m,omitempty"`
	Grant *provider.RecoveryGrant `json:"g,omitempty"`
	Flash *recoveryFlash          `json:"f,omitempty"`
}

// recoveryFlash is what a recovery form tells the page it redirects to
// (Page, a Path* constant): a notice, the limit that refused and when to
// come back, or the tries left.
type recoveryFlash struct {
	Page    string `json:"p"`
	Notice  string `json:"n"`
	Limit   string `json:"l,omitempty"`
	RetryAt int64  `json:"r,omitempty"`
	Left    int    `json:"a,omitempty"`
}

// Notices of the recovery forms.
const (
	recoveryNoticeInvalid  = "invalid"  // not an email address
	recoveryNoticeLimited  = "limited"  // a limit refused (Limit, RetryAt)
	recoveryNoticeWrong    = "wrong"    // a wrong code (Left tries)
	recoveryNoticeExpired  = "expired"  // the recovery expired or was used
	recoveryNoticeMismatch = "mismatch" // the two passwords differ
	recoveryNoticeRules    = "rules"    // the password rules refused it
)

// mountRecoveryPages registers the recovery pages on the CSRF-protected
// router (Mount only).
func (s *Server) mountRecoveryPages(pages *mux.Router) {
	pages.HandleFunc(PathRecover, s.recoverForm).Methods(http.MethodGet)
	pages.HandleFunc(PathRecover, s.recoverRequest).Methods(http.MethodPost)
	pages.HandleFunc(PathRecoverCode, s.recoverCodeForm).Methods(http.MethodGet)
	pages.HandleFunc(PathRecoverCode, s.recoverCodeSubmit).Methods(http.MethodPost)
	pages.HandleFunc(PathRecoverAuthenticator, s.recoverAuthenticatorForm).Methods(http.MethodGet)
	pages.HandleFunc(PathRecoverAuthenticator, s.recoverAuthenticatorSubmit).Methods(http.MethodPost)
	pages.HandleFunc(PathRecoverPassword, s.recoverPasswordForm).Methods(http.MethodGet)
	pages.HandleFunc(PathRecoverPassword, s.recoverPasswordSubmit).Methods(http.MethodPost)
	pages.HandleFunc(PathRecoverDone, s.recoverDone).Methods(http.MethodGet)
}

func (s *Server) recoveryCookieName() string { return s.p.Config().Login.CookieName + "_recovery" }

// recoveryCookieAD binds a sealed recovery cookie to its name.
func recoveryCookieAD(name string) []byte { return []byte("recovery\x00" + name) }

// readRecovery opens the browser's recovery cookie; a missing, changed or
// expired one is the empty state.
func (s *Server) readRecovery(r *http.Request) recoveryState {
	var st recoveryState
	name := s.recoveryCookieName()
	c, err := r.Cookie(name)
	if err != nil {
		return st
	}
	plain, err := openCookie(s.cookies, c.Value, recoveryCookieAD(name))
	if err != nil || json.Unmarshal(plain, &st) != nil {
		return recoveryState{}
	}
	return st
}

// writeRecovery seals st into the recovery cookie, for recovery.window (a
// grant inside it ends sooner: RecoveryGrant.ExpiresAt).
func (s *Server) writeRecovery(w http.ResponseWriter, st recoveryState) error {
	plain, err := json.Marshal(st)
	if err != nil {
		return err
	}
	name := s.recoveryCookieName()
	v, err := sealCookie(s.cookies, plain, recoveryCookieAD(name))
	if err != nil {
		return err
	}
	window := s.p.Config().Recovery.Window
	http.SetCookie(w, &http.Cookie{Name: name, Value: v, Path: s.mount.base + PathRecover, MaxAge: int(window.Seconds()),
		Expires: s.p.Now().Add(window), HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode})
	return nil
}

func (s *Server) clearRecovery(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: s.recoveryCookieName(), Value: "", Path: s.mount.base + PathRecover, MaxAge: -1,
		HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode})
}

// recoveryURL is a recovery page's path keeping return_to.
func (s *Server) recoveryURL(path, returnTo string) string {
	u := s.mount.base + path
	if returnTo != "" {
		u += "?" + url.Values{"return_to": {returnTo}}.Encode()
	}
	return u
}

// recoveryRedirect ends a recovery form: st (with its flash) into the
// cookie, 303 to page.
func (s *Server) recoveryRedirect(w http.ResponseWriter, r *http.Request, st recoveryState, page, returnTo string) {
	if err := s.writeRecovery(w, st); err != nil {
		s.errorPage(w, r, http.StatusInternalServerError, "error.generic", err)
		return
	}
	http.Redirect(w, r, s.recoveryURL(page, returnTo), http.StatusSeeOther)
}

// recoveryPage is the data every recovery page starts from.
func (s *Server) recoveryPage(r *http.Request, st recoveryState, action, returnTo string) RecoveryPage {
	q := url.Values{}
	if returnTo != "" {
		q.Set("return_to", returnTo)
	}
	login := s.mount.base + PathLogin
	if len(q) > 0 {
		login += "?" + q.Encode()
	}
	return RecoveryPage{Email: st.Email, ReturnTo: returnTo, ClientName: s.clientNameOf(r, returnTo), CSRFField: csrfField(r),
		Action: s.mount.base + action, LoginURL: login, RestartURL: s.recoveryURL(PathRecover, returnTo),
		MinPasswordLength: provider.MinPasswordLength}
}

// recoveryLimitMessages are the catalog keys naming each limit a recovery
// page meets, each with {time}: when to come back.
var recoveryLimitMessages = map[string]string{
	"recovery.max_requests_per_account": "recover.error.requests_per_account",
	"recovery.max_requests_per_ip":      "recover.error.requests_per_ip",
	"recovery.max_code_failures_per_ip": "recover.error.code_failures_per_ip",
	"otp.max_attempts":                  "recover.error.burned",
	"otp.max_failures_per_user":         "otp.error.too_many",
}

// describeFlash fills page's Error (or Message) from the flash of the
// form that redirected to path; a flash for another page says nothing.
func (s *Server) describeFlash(r *http.Request, page *RecoveryPage, f *recoveryFlash, path string) {
	if f == nil || f.Page != path {
		return
	}
	loc := s.pages.Locale(r)
	switch f.Notice {
	case recoveryNoticeLimited:
		key, ok := recoveryLimitMessages[f.Limit]
		if !ok {
			key = "otp.error.too_many"
		}
		page.Error = loc.T(key, "time", loc.Clock(time.Unix(f.RetryAt, 0)))
	case recoveryNoticeWrong:
		prefix := "otp.error."
		if path == PathRecoverAuthenticator {
			prefix = "otp.authenticator.error." // tries of otp.max_failures_per_user
		}
		switch f.Left {
		case 0:
			page.Error = loc.T("recover.error.wrong_last")
		case 1:
			page.Error = loc.T(prefix + "wrong_left_one")
		default:
			page.Error = loc.T(prefix+"wrong_left", "count", f.Left)
		}
	case recoveryNoticeInvalid:
		page.Error = loc.T("recover.error.invalid_email")
	case recoveryNoticeExpired:
		page.Error = loc.T("recover.error.expired")
	case recoveryNoticeMismatch:
		page.Error = loc.T("recover.error.password_mismatch")
	case recoveryNoticeRules:
		page.Error = loc.T("recover.error.password_rules", "min", provider.MinPasswordLength, "max", provider.MaxPasswordLength)
	}
}

// limitedFlash is the flash of a limit's refusal, for page.
func (s *Server) limitedFlash(r *http.Request, e *provider.TooManyAttemptsError, page string) *recoveryFlash {
	s.logLimited(r, e)
	return &recoveryFlash{Page: page, Notice: recoveryNoticeLimited, Limit: e.Limit, RetryAt: s.p.Now().Add(retryAfter(e)).Unix()}
}

// recoveryPost reads a recovery form: its return_to and the recovery
// cookie.
func (s *Server) recoveryPost(w http.ResponseWriter, r *http.Request) (recoveryState, string, bool) {
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, r, http.StatusBadRequest, "error.form", err)
		return recoveryState{}, "", false
	}
	returnTo, _ := s.safeReturnTo(r.PostForm.Get("return_to"))
	return s.readRecovery(r), returnTo, true
}

// renderRecovery renders the form of step path as template name, with what
// the flash of the form that redirected here says.
func (s *Server) renderRecovery(w http.ResponseWriter, r *http.Request, st recoveryState, path, returnTo, name string) {
	page := s.recoveryPage(r, st, path, returnTo)
	s.describeFlash(r, &page, st.Flash, path)
	s.pages.Render(w, r, http.StatusOK, name, page)
}

// recoverForm is GET /login/recover: the email address to recover.
func (s *Server) recoverForm(w http.ResponseWriter, r *http.Request) {
	returnTo, _ := s.safeReturnTo(r.URL.Query().Get("return_to"))
	st := s.readRecovery(r)
	s.renderRecovery(w, r, st, PathRecover, returnTo, "recover")
}

// recoverRequest is POST /login/recover: a recovery code to the address
// when an account has it (provider.RequestRecovery), and on to the code
// form, which says the same whether or not one has.
func (s *Server) recoverRequest(w http.ResponseWriter, r *http.Request) {
	_, returnTo, ok := s.recoveryPost(w, r)
	if !ok {
		return
	}
	email := r.PostForm.Get("email")
	err := s.p.RequestRecovery(r.Context(), provider.RecoveryRequest{Email: email, IP: s.clientIP(r), ClientID: clientIDOf(returnTo),
		Locale: s.pages.Locale(r).Tag()})
	var tooMany *provider.TooManyAttemptsError
	switch {
	case err == nil:
		s.recoveryRedirect(w, r, recoveryState{Email: email}, PathRecoverCode, returnTo)
	case errors.Is(err, provider.ErrInvalidInput):
		s.recoveryRedirect(w, r, recoveryState{Email: email, Flash: &recoveryFlash{Page: PathRecover, Notice: recoveryNoticeInvalid}}, PathRecover, returnTo)
	case errors.As(err, &tooMany) && tooMany.Limit == "recovery.max_requests_per_account":
		// No new code for this address; one sent before may still be
		// entered on the code form, which says so.
		s.recoveryRedirect(w, r, recoveryState{Email: email, Flash: s.limitedFlash(r, tooMany, PathRecoverCode)}, PathRecoverCode, returnTo)
	case errors.As(err, &tooMany):
		s.recoveryRedirect(w, r, recoveryState{Email: email, Flash: s.limitedFlash(r, tooMany, PathRecover)}, PathRecover, returnTo)
	default:
		s.errorPage(w, r, http.StatusInternalServerError, "error.generic", err)
	}
}

// recoverCodeForm is GET /login/recover/code: the emailed recovery code.
// It says a code is on its way only as far as that is true: if an account
// has the address, and unless too many were sent.
func (s *Server) recoverCodeForm(w http.ResponseWriter, r *http.Request) {
	returnTo, _ := s.safeReturnTo(r.URL.Query().Get("return_to"))
	st := s.readRecovery(r)
	if st.Email == "" {
		http.Redirect(w, r, s.recoveryURL(PathRecover, returnTo), http.StatusSeeOther)
		return
	}
	page := s.recoveryPage(r, st, PathRecoverCode, returnTo)
	loc := s.pages.Locale(r)
	ttl := s.p.Config().OTP.TTL
	page.Message = loc.T("recover.code.sent_if", "email", st.Email, "minutes", int((ttl+time.Minute-1)/time.Minute))
	s.describeFlash(r, &page, st.Flash, PathRecoverCode)
	if st.Flash != nil && st.Flash.Page == PathRecoverCode && st.Flash.Limit == "recovery.max_requests_per_account" {
		page.Message = loc.T("recover.code.not_sent", "email", st.Email)
	}
	s.pages.Render(w, r, http.StatusOK, "recover_code", page)
}

// recoverCodeSubmit is POST /login/recover/code: a matched code gives the
// grant (into the cookie) and goes on to the authenticator code, for a user
// who has one, or the new password.
func (s *Server) recoverCodeSubmit(w http.ResponseWriter, r *http.Request) {
	st, returnTo, ok := s.recoveryPost(w, r)
	if !ok {
		return
	}
	if st.Email == "" {
		s.recoveryRedirect(w, r, recoveryState{Flash: &recoveryFlash{Page: PathRecover, Notice: recoveryNoticeExpired}}, PathRecover, returnTo)
		return
	}
	grant, err := s.p.VerifyRecoveryCode(r.Context(), st.Email, r.PostForm.Get("otp"), s.clientIP(r))
	var (
		tooMany  *provider.TooManyAttemptsError
		mismatch *provider.OTPMismatchError
	)
	switch {
	case err == nil:
		st.Grant, st.Flash = grant, nil
		s.recoveryNext(w, r, st, returnTo)
	case errors.As(err, &mismatch):
		st.Flash = &recoveryFlash{Page: PathRecoverCode, Notice: recoveryNoticeWrong, Left: mismatch.AttemptsLeft}
		s.recoveryRedirect(w, r, st, PathRecoverCode, returnTo)
	case errors.Is(err, provider.ErrOTPMismatch):
		st.Flash = &recoveryFlash{Page: PathRecoverCode, Notice: recoveryNoticeWrong}
		s.recoveryRedirect(w, r, st, PathRecoverCode, returnTo)
	case errors.As(err, &tooMany):
		st.Flash = s.limitedFlash(r, tooMany, PathRecoverCode)
		s.recoveryRedirect(w, r, st, PathRecoverCode, returnTo)
	default:
		s.errorPage(w, r, http.StatusInternalServerError, "error.generic", err)
	}
}

// recoveryNext sends a browser holding a grant on: to the authenticator
// code while the grant's user must pass one, else to the new password.
func (s *Server) recoveryNext(w http.ResponseWriter, r *http.Request, st recoveryState, returnTo string) {
	needs, err := s.p.RecoveryNeedsTOTP(r.Context(), st.Grant)
	if err != nil {
		s.errorPage(w, r, http.StatusInternalServerError, "error.generic", err)
		return
	}
	next := PathRecoverPassword
	if needs {
		next = PathRecoverAuthenticator
	}
	s.recoveryRedirect(w, r, st, next, returnTo)
}

// recoveryGrantPage is the start of the pages after the code: without a
// grant the browser goes back to the email form.
func (s *Server) recoveryGrantPage(w http.ResponseWriter, r *http.Request) (recoveryState, string, bool) {
	returnTo, _ := s.safeReturnTo(r.URL.Query().Get("return_to"))
	st := s.readRecovery(r)
	if st.Grant == nil || !s.p.Now().Before(st.Grant.ExpiresAt) {
		s.recoveryExpired(w, r, st, returnTo)
		return st, "", false
	}
	return st, returnTo, true
}

// recoveryGrantPost reads a form of a step after the code (recoveryPost),
// which needs the grant the code gave: without one, back to the email form.
// A grant past its time is the provider's to refuse (ErrRecoveryExpired).
func (s *Server) recoveryGrantPost(w http.ResponseWriter, r *http.Request) (recoveryState, string, bool) {
	st, returnTo, ok := s.recoveryPost(w, r)
	if ok && st.Grant == nil {
		s.recoveryExpired(w, r, st, returnTo)
		return st, "", false
	}
	return st, returnTo, ok
}

// recoveryExpired answers a form whose grant can no longer set a password:
// back to the email form, saying so.
func (s *Server) recoveryExpired(w http.ResponseWriter, r *http.Request, st recoveryState, returnTo string) {
	s.recoveryRedirect(w, r, recoveryState{Email: st.Email, Flash: &recoveryFlash{Page: PathRecover, Notice: recoveryNoticeExpired}}, PathRecover, returnTo)
}

// recoverAuthenticatorForm is GET /login/recover/authenticator: the code of
// the user's authenticator app, which a user who has one passes before the
// new password.
func (s *Server) recoverAuthenticatorForm(w http.ResponseWriter, r *http.Request) {
	st, returnTo, ok := s.recoveryGrantPage(w, r)
	if !ok {
		return
	}
	s.renderRecovery(w, r, st, PathRecoverAuthenticator, returnTo, "recover_authenticator")
}

// recoverAuthenticatorSubmit is POST /login/recover/authenticator
// (provider.VerifyRecoveryTOTP): the right code marks the grant and goes on
// to the new password; a wrong one counts in otp.max_failures_per_user, and
// the form says the tries that leaves.
func (s *Server) recoverAuthenticatorSubmit(w http.ResponseWriter, r *http.Request) {
	st, returnTo, ok := s.recoveryGrantPost(w, r)
	if !ok {
		return
	}
	passed, err := s.p.VerifyRecoveryTOTP(r.Context(), st.Grant, r.PostForm.Get("otp"))
	var tooMany *provider.TooManyAttemptsError
	switch {
	case err == nil:
		st.Grant, st.Flash = passed, nil
		s.recoveryRedirect(w, r, st, PathRecoverPassword, returnTo)
	case errors.Is(err, provider.ErrRecoveryExpired):
		s.recoveryExpired(w, r, st, returnTo)
	case errors.Is(err, provider.ErrOTPMismatch):
		left, locked, err := s.p.OTPFailuresLeft(r.Context(), &storage.User{ID: st.Grant.UserID})
		if err != nil {
			s.errorPage(w, r, http.StatusInternalServerError, "error.generic", err)
			return
		}
		st.Flash = &recoveryFlash{Page: PathRecoverAuthenticator, Notice: recoveryNoticeWrong, Left: left}
		if locked != nil {
			st.Flash = s.limitedFlash(r, locked, PathRecoverAuthenticator)
		}
		s.recoveryRedirect(w, r, st, PathRecoverAuthenticator, returnTo)
	case errors.As(err, &tooMany):
		st.Flash = s.limitedFlash(r, tooMany, PathRecoverAuthenticator)
		s.recoveryRedirect(w, r, st, PathRecoverAuthenticator, returnTo)
	default:
		s.errorPage(w, r, http.StatusInternalServerError, "error.generic", err)
	}
}

// recoverPasswordForm is GET /login/recover/password: the new password,
// twice.
func (s *Server) recoverPasswordForm(w http.ResponseWriter, r *http.Request) {
	st, returnTo, ok := s.recoveryGrantPage(w, r)
	if !ok {
		return
	}
	if needs, err := s.p.RecoveryNeedsTOTP(r.Context(), st.Grant); err != nil {
		s.errorPage(w, r, http.StatusInternalServerError, "error.generic", err)
		return
	} else if needs {
		http.Redirect(w, r, s.recoveryURL(PathRecoverAuthenticator, returnTo), http.StatusSeeOther)
		return
	}
	s.renderRecovery(w, r, st, PathRecoverPassword, returnTo, "recover_password")
}

// recoverPasswordSubmit is POST /login/recover/password
// (provider.CompleteRecovery): the new password set, every session of the
// user ended, the browser holds the recovered session (aal1) and goes on to
// return_to, or to the done page.
func (s *Server) recoverPasswordSubmit(w http.ResponseWriter, r *http.Request) {
	st, returnTo, ok := s.recoveryGrantPost(w, r)
	if !ok {
		return
	}
	password := r.PostForm.Get("password")
	if password != r.PostForm.Get("password_confirm") {
		st.Flash = &recoveryFlash{Page: PathRecoverPassword, Notice: recoveryNoticeMismatch}
		s.recoveryRedirect(w, r, st, PathRecoverPassword, returnTo)
		return
	}
	ctx := r.Context()
	ls, _, err := s.p.CompleteRecovery(ctx, st.Grant, password, s.clientIP(r), clientIDOf(returnTo))
	switch {
	case err == nil:
	case errors.Is(err, provider.ErrInvalidInput):
		st.Flash = &recoveryFlash{Page: PathRecoverPassword, Notice: recoveryNoticeRules}
		s.recoveryRedirect(w, r, st, PathRecoverPassword, returnTo)
		return
	case errors.Is(err, provider.ErrRecoveryNeedsTOTP):
		st.Flash = nil
		s.recoveryRedirect(w, r, st, PathRecoverAuthenticator, returnTo)
		return
	case errors.Is(err, provider.ErrRecoveryExpired):
		s.recoveryExpired(w, r, st, returnTo)
		return
	default:
		s.errorPage(w, r, http.StatusInternalServerError, "error.generic", err)
		return
	}
	// The browser's session of another account, if any, ends too (the
	// user's own ended with the reset).
	if old, _, err := s.currentSession(r); err == nil {
		_ = s.p.EndLoginSession(ctx, old.ID)
	}
	if err := s.setSessionCookie(w, ls); err != nil {
		s.errorPage(w, r, http.StatusInternalServerError, "error.generic", err)
		return
	}
	s.clearRecovery(w)
	target := returnTo
	if target == "" {
		target = s.mount.base + PathRecoverDone
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// recoverDone is GET /login/recover/done: the new password is set and the
// browser signed in (a recovery with nowhere to return to).
func (s *Server) recoverDone(w http.ResponseWriter, r *http.Request) {
	ls, user, err := s.currentSession(r)
	if err != nil || !ls.Recovered {
		http.Redirect(w, r, s.mount.base+PathLogin, http.StatusSeeOther)
		return
	}
	page := s.recoveryPage(r, recoveryState{Email: user.Email}, PathRecoverDone, "")
	s.pages.Render(w, r, http.StatusOK, "recovered", page)
}

// recoveredSignIn is /login/otp for a recovered session: no emailed code
// can pass it (the mailbox proved the recovery), so none is sent and the
// page says to sign in again with the new password, keeping return_to.
func (s *Server) recoveredSignIn(w http.ResponseWriter, r *http.Request, user *storage.User, returnTo string) {
	page := s.recoveryPage(r, recoveryState{Email: user.Email}, PathLogin, returnTo)
	s.renderLeadingTo(w, r, http.StatusOK, "recovered_signin", page, returnTo)
}
