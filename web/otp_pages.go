package web

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/gorilla/mux"

	"github.com/otpstep/otpstep/provider"
	"github.com/otpstep/otpstep/storage"
)

// mountOTPPages registers the OTP pages on a CSRF-protected router and
// returns the route of the page itself.
func (s *Server) mountOTPPages(pages *mux.Router) *mux.Route {
	page := pages.HandleFunc(PathOTP, s.otpForm).Methods(http.MethodGet)
	pages.HandleFunc(PathOTP, s.otpSubmit).Methods(http.MethodPost)
	pages.HandleFunc(PathOTPResend, s.otpResend).Methods(http.MethodPost)
	return page
}

// redirectToOTP makes sure a login OTP is on its way and sends the browser to
// /login/otp, carrying the authorize query to come back to.
func (s *Server) redirectToOTP(w http.ResponseWriter, r *http.Request, ls *storage.LoginSession, user *storage.User, clientID string) {
	if err := s.SendToOTP(w, r, ls, user, clientID, PathAuthorize+"?"+r.URL.RawQuery); err != nil {
		s.errorPage(w, r, http.StatusInternalServerError, "Something went wrong. Please try again.", err)
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
	req := provider.OTPRequest{Kind: provider.OTPKindLogin, User: user, SessionID: ls.ID, ClientID: clientID, IP: s.clientIP(r)}
	if err := s.p.EnsureLoginOTP(r.Context(), req); err != nil && !errors.As(err, &tooMany) {
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
			s.errorPage(w, r, http.StatusInternalServerError, "Something went wrong. Please try again.", err)
			return nil, nil, false
		}
		if s.mount.embedded {
			if returnTo == "" {
				s.errorPage(w, r, http.StatusBadRequest, "Your sign-in has expired. Please start again.", err)
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
	page := OTPPage{Destination: maskEmail(user.Email), ReturnTo: returnTo, CSRFField: csrfField(r)}
	if s.mount.base != "" {
		page.Action, page.ResendAction = s.mount.base+PathOTP, s.mount.base+PathOTPResend
	}
	return page
}

// otpForm is GET /login/otp.
func (s *Server) otpForm(w http.ResponseWriter, r *http.Request) {
	returnTo, _ := s.safeReturnTo(r.URL.Query().Get("return_to"))
	_, user, ok := s.otpPageSession(w, r, returnTo)
	if !ok {
		return
	}
	s.renderLeadingTo(w, r, http.StatusOK, "login_otp", s.otpPage(r, user, returnTo), returnTo)
}

// otpPost is what both OTP forms do first: read the form, check return_to,
// find the login session (or answer for the caller) and prepare the page.
func (s *Server) otpPost(w http.ResponseWriter, r *http.Request) (ls *storage.LoginSession, user *storage.User, page OTPPage, returnTo string, ok bool) {
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, r, http.StatusBadRequest, "The form could not be read.", err)
		return nil, nil, page, "", false
	}
	returnTo, _ = s.safeReturnTo(r.PostForm.Get("return_to"))
	if ls, user, ok = s.otpPageSession(w, r, returnTo); !ok {
		return nil, nil, page, "", false
	}
	return ls, user, s.otpPage(r, user, returnTo), returnTo, true
}

// otpSubmit is POST /login/otp: the second factor on the page.
func (s *Server) otpSubmit(w http.ResponseWriter, r *http.Request) {
	ls, user, page, returnTo, ok := s.otpPost(w, r)
	if !ok {
		return
	}
	// The step up comes with a new cookie value (a copy of the old one
	// opens nothing), unless the host keeps the sid (its cookie is its own).
	var err error
	if s.opts.SessionFromRequest == nil {
		err = s.p.PassLoginOTPInBrowser(r.Context(), user, ls, r.PostForm.Get("otp"))
	} else {
		_, err = s.p.VerifyOTP(r.Context(), []string{provider.OTPKindLogin}, user, ls.ID, r.PostForm.Get("otp"))
	}
	var tooMany *provider.TooManyAttemptsError
	switch {
	case err == nil:
		if ls.BrowserKey != "" {
			if err := s.setSessionCookie(w, ls); err != nil {
				s.errorPage(w, r, http.StatusInternalServerError, "Something went wrong. Please try again.", err)
				return
			}
		}
	case errors.Is(err, provider.ErrSessionNotFound):
		// The session ended or expired meanwhile: back to the login.
		s.otpPageSession(w, r, returnTo)
		return
	case errors.Is(err, provider.ErrOTPMismatch):
		page.Error = "That code is not right or has expired. Check the latest email, or send a new code."
		s.renderLeadingTo(w, r, http.StatusUnauthorized, "login_otp", page, page.ReturnTo)
		return
	case errors.As(err, &tooMany):
		s.logLimited(r, tooMany)
		setRetryAfter(w, tooMany)
		page.Error = "Too many wrong codes. Send a new code, or wait a few minutes."
		s.renderLeadingTo(w, r, http.StatusTooManyRequests, "login_otp", page, page.ReturnTo)
		return
	default:
		s.errorPage(w, r, http.StatusInternalServerError, "Something went wrong. Please try again.", err)
		return
	}
	if returnTo == "" {
		s.pages.Render(w, r, http.StatusOK, "logged_in", LoggedInPage{Email: user.Email, HideLogout: s.mount.embedded})
		return
	}
	http.Redirect(w, r, returnTo, http.StatusSeeOther)
}

// otpResend is POST /login/otp/resend: a new code, within the resend limits.
func (s *Server) otpResend(w http.ResponseWriter, r *http.Request) {
	ls, user, page, returnTo, ok := s.otpPost(w, r)
	if !ok {
		return
	}
	clientID := clientIDOf(returnTo)
	_, err := s.p.IssueOTP(r.Context(), provider.OTPRequest{Kind: provider.OTPKindLogin, User: user, SessionID: ls.ID, ClientID: clientID, IP: s.clientIP(r)})
	var tooMany *provider.TooManyAttemptsError
	switch {
	case err == nil:
		page.Message = "A new code is on its way to " + page.Destination + "."
		s.renderLeadingTo(w, r, http.StatusOK, "login_otp", page, page.ReturnTo)
	case errors.As(err, &tooMany):
		s.logLimited(r, tooMany)
		setRetryAfter(w, tooMany)
		page.Error = "A new code was sent recently. Please wait a moment before asking again."
		s.renderLeadingTo(w, r, http.StatusTooManyRequests, "login_otp", page, page.ReturnTo)
	default:
		s.errorPage(w, r, http.StatusInternalServerError, "Something went wrong. Please try again.", err)
	}
}

func clientIDOf(returnTo string) string {
	u, err := url.Parse(returnTo)
	if err != nil {
		return ""
	}
	return u.Query().Get("client_id")
}

func setRetryAfter(w http.ResponseWriter, e *provider.TooManyAttemptsError) {
	w.Header().Set("Retry-After", strconv.Itoa(int(math.Max(1, math.Ceil(e.RetryAfter.Seconds())))))
}

// maskEmail shows enough of an address to recognise it: j***@example.com.
func maskEmail(email string) string {
	local, domain, ok := strings.Cut(email, "@")
	if !ok || local == "" {
		return "your email address"
	}
	return local[:1] + "***@" + domain
}
