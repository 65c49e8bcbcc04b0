package web

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/otpstep/otpstep/provider"
	"github.com/otpstep/otpstep/storage"
	"github.com/otpstep/otpstep/web/jsonapi"
)

// mountOTPPages registers the OTP pages on a CSRF-protected router and
// returns the route of the page itself.
func (s *Server) mountOTPPages(pages *mux.Router) *mux.Route {
	page := pages.HandleFunc(PathOTP, s.otpForm).Methods(http.MethodGet)
	pages.HandleFunc(PathOTP, s.otpSubmit).Methods(http.MethodPost)
	pages.HandleFunc(PathOTPResend, s.otpResend).Methods(http.MethodPost)
	pages.HandleFunc(PathOTPAuthenticator, s.otpAuthenticatorSubmit).Methods(http.MethodPost)
	return page
}

// redirectToOTP makes sure a login OTP is on its way and sends the browser to
// /login/otp, carrying the authorize query to come back to, which the login
// now answers as to prompt=login and max_age (provider.ReauthSatisfied: the
// time spent over the code does not count against max_age).
func (s *Server) redirectToOTP(w http.ResponseWriter, r *http.Request, ls *storage.LoginSession, user *storage.User, clientID string) {
	if err := s.SendToOTP(w, r, ls, user, clientID, PathAuthorize+"?"+provider.ReauthSatisfied(r.URL.Query()).Encode()); err != nil {
		s.errorPage(w, r, http.StatusInternalServerError, "error.generic", err)
	}
}

// SendToOTP makes sure a login OTP for the session is on its way (unless a
// live one is, or the resend limits hold it back: the page offers "send a
// new code") and redirects the browser to the OTP page, which sends it on to
// returnTo once the code is accepted. returnTo must be a local path the page
// accepts (otpstep's own, or one of Options.ReturnPaths). On an error
// nothing is written.
func (s *Server) SendToOTP(w http.ResponseWriter, r *http.Request, ls *storage.LoginSession, user *storage.User, clientID, returnTo string) error {
	if _, ok := s.safeReturnTo(returnTo); !ok {
		return fmt.Errorf("web: return_to %q is not a path the OTP page returns to (Options.ReturnPaths)", returnTo)
	}
	var tooMany *provider.TooManyAttemptsError
	req := provider.OTPRequest{Kind: provider.OTPKindLogin, User: user, SessionID: ls.ID, ClientID: clientID, IP: s.clientIP(r),
		Locale: s.pages.Locale(r).Tag()}
	// A recovered session gets no code (ErrRecoveredSession): the page
	// says to sign in again.
	if err := s.p.EnsureLoginOTP(r.Context(), req); err != nil && !errors.As(err, &tooMany) && !errors.Is(err, provider.ErrRecoveredSession) {
		return err
	}
	http.Redirect(w, r, s.mount.base+PathOTP+"?"+url.Values{"return_to": {returnTo}}.Encode(), http.StatusSeeOther)
	return nil
}

// otpPageSession is the browser's login session for the OTP pages; without
// one the browser goes back to /login, or, embedded (no /login here), back
// to where it came from: the host's authorize endpoint then asks for its
// own login.
func (s *Server) otpPageSession(w http.ResponseWriter, r *http.Request, returnTo string) (*storage.LoginSession, *storage.User, bool) {
	ls, user, err := s.currentSession(r)
	if err != nil {
		if !errors.Is(err, provider.ErrLoginSessionGone) {
			s.errorPage(w, r, http.StatusInternalServerError, "error.generic", err)
			return nil, nil, false
		}
		if s.p.Embedded() {
			if returnTo == "" {
				s.errorPage(w, r, http.StatusBadRequest, "error.expired", err)
				return nil, nil, false
			}
			http.Redirect(w, r, returnTo, http.StatusSeeOther)
			return nil, nil, false
		}
		target := PathLogin
		if returnTo != "" {
			target += "?" + url.Values{"return_to": {returnTo}}.Encode()
		}
		http.Redirect(w, r, target, http.StatusSeeOther)
		return nil, nil, false
	}
	return ls, user, true
}

// otpPage is the OTP page's data, its forms posting under the mount prefix.
func (s *Server) otpPage(r *http.Request, user *storage.User, returnTo string) OTPPage {
	page := OTPPage{Destination: maskEmail(user.Email), ReturnTo: returnTo, CSRFField: csrfField(r), ClientName: s.clientNameOf(r, returnTo),
		email: user.Email}
	if s.mount.base != "" {
		page.Action, page.ResendAction = s.mount.base+PathOTP, s.mount.base+PathOTPResend
		page.AuthenticatorAction = s.mount.base + PathOTPAuthenticator
	}
	return page
}

// Notices the OTP forms redirect with (post/redirect/get: a reload sends
// nothing). Each only picks the words; what they say of the code (sent,
// tries left, when a new one may be asked for) is read from the database.
const (
	otpNoticeResent  = "resent"  // a new code was sent
	otpNoticeRefused = "refused" // a send limit refused a new code
	otpNoticeWrong   = "wrong"   // a wrong code spent a try
	otpNoticeExpired = "expired" // no live code matched: expired, used or none
	otpNoticeBurned  = "burned"  // the last try burned the code
	otpNoticeLocked  = "locked"  // otp.max_failures_per_user
	// otpNoticeAuthenticatorWrong: a wrong code of the authenticator app,
	// one of otp.max_failures_per_user.
	otpNoticeAuthenticatorWrong = "authenticator_wrong"
)

// otpForm is GET /login/otp: the code form, saying what is true of the
// session's code.
func (s *Server) otpForm(w http.ResponseWriter, r *http.Request) {
	returnTo, _ := s.safeReturnTo(r.URL.Query().Get("return_to"))
	ls, user, ok := s.otpPageSession(w, r, returnTo)
	if !ok {
		return
	}
	if ls.Recovered {
		s.recoveredSignIn(w, r, user, returnTo)
		return
	}
	page := s.otpPage(r, user, returnTo)
	st, err := s.p.LoginCodeStatus(r.Context(), user, ls.ID)
	if err != nil {
		s.errorPage(w, r, http.StatusInternalServerError, "error.generic", err)
		return
	}
	if page.Authenticator, err = s.p.HasAuthenticatorTOTP(r.Context(), user.ID); err != nil {
		s.errorPage(w, r, http.StatusInternalServerError, "error.generic", err)
		return
	}
	s.describeCode(r, &page, st, r.URL.Query().Get("notice"))
	s.renderLeadingTo(w, r, http.StatusOK, "login_otp", page, returnTo)
}

// describeCode fills the OTP page's notice and error from the code's
// status st and the notice of the form that redirected here: "We sent a
// code" only while a code is live, which limit holds the next one back and
// until when, the tries left after a wrong code, and that the last one
// burned it.
func (s *Server) describeCode(r *http.Request, page *OTPPage, st provider.LoginCodeStatus, notice string) {
	loc := s.pages.Locale(r)
	page.Destination = ""
	if st.Live {
		page.Message = loc.T("otp.sent_to", "destination", maskEmail(page.email))
		if notice == otpNoticeResent {
			page.Message = loc.T("otp.resent_to", "destination", maskEmail(page.email))
		}
	} else if st.Expired {
		page.Message = loc.T("otp.expired")
	} else if notice != otpNoticeBurned && notice != otpNoticeWrong {
		page.Message = loc.T("otp.not_sent")
	}
	switch notice {
	case otpNoticeWrong:
		switch {
		case !st.Live:
			page.Error = loc.T("otp.error.wrong")
		case st.AttemptsLeft == 1:
			page.Error = loc.T("otp.error.wrong_left_one")
		default:
			page.Error = loc.T("otp.error.wrong_left", "count", st.AttemptsLeft)
		}
	case otpNoticeBurned:
		if !st.Live {
			page.Error = loc.T("otp.error.burned")
		}
	case otpNoticeExpired:
		page.Error = loc.T("otp.error.wrong")
	case otpNoticeLocked:
		if st.Locked != nil {
			page.Error = s.limitMessage(r, st.Locked)
		}
	case otpNoticeAuthenticatorWrong:
		// The emailed code kept its tries; what is left is the user's
		// otp.max_failures_per_user, which every wrong code spends.
		switch {
		case st.Locked != nil:
			page.AuthenticatorError = s.limitMessage(r, st.Locked)
		case st.FailuresLeft == 1:
			page.AuthenticatorError = loc.T("otp.authenticator.error.wrong_left_one")
		default:
			page.AuthenticatorError = loc.T("otp.authenticator.error.wrong_left", "count", st.FailuresLeft)
		}
	}
	if st.NextCode != nil && (notice == otpNoticeRefused || !st.Live) {
		// Why no new code can be had yet, and from when it can.
		msg := s.limitMessage(r, st.NextCode)
		if page.Error != "" {
			page.Error += " " + msg
		} else {
			page.Error = msg
		}
	}
}

// redirectToOTPPage ends a POST of the OTP forms: 303 to the form, with the
// notice that picks its words.
func (s *Server) redirectToOTPPage(w http.ResponseWriter, r *http.Request, returnTo, notice string) {
	q := url.Values{"notice": {notice}}
	if returnTo != "" {
		q.Set("return_to", returnTo)
	}
	http.Redirect(w, r, s.mount.base+PathOTP+"?"+q.Encode(), http.StatusSeeOther)
}

// otpPost is what both OTP forms do first: read the form, check return_to,
// find the login session (or answer for the caller).
func (s *Server) otpPost(w http.ResponseWriter, r *http.Request) (ls *storage.LoginSession, user *storage.User, returnTo string, ok bool) {
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, r, http.StatusBadRequest, "error.form", err)
		return nil, nil, "", false
	}
	returnTo, _ = s.safeReturnTo(r.PostForm.Get("return_to"))
	if ls, user, ok = s.otpPageSession(w, r, returnTo); !ok {
		return nil, nil, "", false
	}
	if ls.Recovered {
		// No code passes a recovered session, and none is sent for it:
		// the form says to sign in again.
		s.redirectToOTPPage(w, r, returnTo, "")
		return nil, nil, "", false
	}
	return ls, user, returnTo, true
}

// otpSubmit is POST /login/otp: the second factor on the page. A refused
// code redirects to the form (post/redirect/get), which tells why.
func (s *Server) otpSubmit(w http.ResponseWriter, r *http.Request) {
	ls, user, returnTo, ok := s.otpPost(w, r)
	if !ok {
		return
	}
	err := s.passSecondFactor(w, r, user, ls, provider.OTPKindLogin)
	var (
		tooMany  *provider.TooManyAttemptsError
		mismatch *provider.OTPMismatchError
	)
	switch {
	case err == nil:
	case errors.Is(err, provider.ErrSessionNotFound):
		// The session ended or expired meanwhile: back to the login.
		s.otpPageSession(w, r, returnTo)
		return
	case errors.As(err, &mismatch):
		notice := otpNoticeWrong
		if mismatch.AttemptsLeft == 0 {
			notice = otpNoticeBurned // the 5th wrong try, not the 6th
		}
		s.redirectToOTPPage(w, r, returnTo, notice)
		return
	case errors.Is(err, provider.ErrOTPMismatch):
		s.redirectToOTPPage(w, r, returnTo, otpNoticeExpired)
		return
	case errors.As(err, &tooMany):
		s.logLimited(r, tooMany)
		notice := otpNoticeLocked
		if tooMany.Limit == "otp.max_attempts" {
			notice = otpNoticeBurned
		}
		s.redirectToOTPPage(w, r, returnTo, notice)
		return
	default:
		s.errorPage(w, r, http.StatusInternalServerError, "error.generic", err)
		return
	}
	s.secondFactorPassed(w, r, user, returnTo)
}

// passSecondFactor passes ls's second factor with the form's code of kind
// (provider.OTPKindLogin, the emailed code; provider.OTPKindTOTP, the
// authenticator app's). Standalone the step up comes with a new cookie
// value (a copy of the old one opens nothing); embedded the host keeps the
// sid (its cookie is its own) and the code is verified on its session. A
// cookie that cannot be set is an error like any other (500).
func (s *Server) passSecondFactor(w http.ResponseWriter, r *http.Request, user *storage.User, ls *storage.LoginSession, kind string) error {
	code := r.PostForm.Get("otp")
	var err error
	switch {
	case s.opts.SessionFromRequest != nil:
		_, err = s.p.VerifyOTP(r.Context(), []string{kind}, user, ls.ID, code)
	case kind == provider.OTPKindTOTP:
		err = s.p.PassLoginTOTPInBrowser(r.Context(), user, ls, code)
	default:
		err = s.p.PassLoginOTPInBrowser(r.Context(), user, ls, code)
	}
	if err == nil && ls.BrowserKey != "" {
		err = s.setSessionCookie(w, ls)
	}
	return err
}

// secondFactorPassed ends an OTP form whose code passed the session: on to
// returnTo, or a page saying so.
func (s *Server) secondFactorPassed(w http.ResponseWriter, r *http.Request, user *storage.User, returnTo string) {
	if returnTo == "" {
		s.pages.Render(w, r, http.StatusOK, "logged_in", LoggedInPage{Email: user.Email, HideLogout: s.p.Embedded(), AuthenticatorURL: s.mount.base + PathSettingsTOTP})
		return
	}
	http.Redirect(w, r, returnTo, http.StatusSeeOther)
}

// otpAuthenticatorSubmit is POST /login/otp/authenticator: the second
// factor with a code of the user's authenticator app (a confirmed
// authenticator TOTP, ±1 step, each step once) instead of the emailed code,
// which it burns. It passes the session as the emailed code does (amr
// "otp", acr aal2, a new cookie value); a wrong code counts in
// otp.max_failures_per_user and redirects to the form (post/redirect/get),
// which tells how many tries are left.
func (s *Server) otpAuthenticatorSubmit(w http.ResponseWriter, r *http.Request) {
	ls, user, returnTo, ok := s.otpPost(w, r)
	if !ok {
		return
	}
	err := s.passSecondFactor(w, r, user, ls, provider.OTPKindTOTP)
	var tooMany *provider.TooManyAttemptsError
	switch {
	case err == nil:
	case errors.Is(err, provider.ErrSessionNotFound):
		s.otpPageSession(w, r, returnTo)
		return
	case errors.Is(err, provider.ErrRecoveredSession):
		s.errorPage(w, r, http.StatusForbidden, "otp.error.recovered", err)
		return
	case errors.Is(err, provider.ErrOTPMismatch):
		s.redirectToOTPPage(w, r, returnTo, otpNoticeAuthenticatorWrong)
		return
	case errors.As(err, &tooMany):
		s.logLimited(r, tooMany)
		s.redirectToOTPPage(w, r, returnTo, otpNoticeAuthenticatorWrong)
		return
	default:
		s.errorPage(w, r, http.StatusInternalServerError, "error.generic", err)
		return
	}
	s.secondFactorPassed(w, r, user, returnTo)
}

// otpResend is POST /login/otp/resend: a new code, within the resend
// limits; either way it redirects to the form, which says whether a code
// was sent and, if not, which limit held it back and until when.
func (s *Server) otpResend(w http.ResponseWriter, r *http.Request) {
	ls, user, returnTo, ok := s.otpPost(w, r)
	if !ok {
		return
	}
	clientID := clientIDOf(returnTo)
	_, err := s.p.IssueOTP(r.Context(), provider.OTPRequest{Kind: provider.OTPKindLogin, User: user, SessionID: ls.ID, ClientID: clientID, IP: s.clientIP(r),
		Locale: s.pages.Locale(r).Tag()})
	var tooMany *provider.TooManyAttemptsError
	switch {
	case err == nil:
		s.redirectToOTPPage(w, r, returnTo, otpNoticeResent)
	case errors.As(err, &tooMany):
		s.logLimited(r, tooMany)
		s.redirectToOTPPage(w, r, returnTo, otpNoticeRefused)
	default:
		s.errorPage(w, r, http.StatusInternalServerError, "error.generic", err)
	}
}

// limitMessages are the catalog keys telling which limit refused, by its
// config key (provider.TooManyAttemptsError.Limit), each with {time}: when
// to come back.
var limitMessages = map[string]string{
	"otp.resend_interval":            "otp.error.resend_interval",
	"otp.max_sends_per_hour":         "otp.error.sends_per_hour",
	"otp.max_failures_per_user":      "otp.error.too_many",
	"login.max_failures_per_account": "login.error.too_many",
	"login.max_failures_per_ip":      "login.error.too_many",
}

// limitMessage tells the user which limit refused and when to come back, in
// their language and ui.time_zone ("You can ask for a new code at 21:40 UTC").
func (s *Server) limitMessage(r *http.Request, e *provider.TooManyAttemptsError) string {
	key, ok := limitMessages[e.Limit]
	if !ok {
		key = "otp.error.too_many"
	}
	loc := s.pages.Locale(r)
	return loc.T(key, "time", loc.Clock(s.p.Now().Add(retryAfter(e))))
}

func clientIDOf(returnTo string) string {
	u, err := url.Parse(returnTo)
	if err != nil {
		return ""
	}
	return u.Query().Get("client_id")
}

func setRetryAfter(w http.ResponseWriter, e *provider.TooManyAttemptsError) {
	jsonapi.SetRetryAfter(w.Header(), e.RetryAfter)
}

// retryAfter is e's wait as Retry-After says it (jsonapi.RetryAfter); the
// pages name the same moment.
func retryAfter(e *provider.TooManyAttemptsError) time.Duration {
	return jsonapi.RetryAfter(e.RetryAfter)
}

// maskEmail shows enough of an address to recognise it: j***@example.com.
func maskEmail(email string) string {
	local, domain, ok := strings.Cut(email, "@")
	if !ok || local == "" {
		return "your email address"
	}
	return local[:1] + "***@" + domain
}
