package web

import (
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/skip2/go-qrcode"

	"github.com/otpstep/otpstep/provider"
	"github.com/otpstep/otpstep/storage"
)

// The authenticator page, /settings/totp: a user signed in past the second
// factor enrolls an authenticator app (a QR code of the otpauth:// URI,
// rendered here as an inline PNG, and the secret as text), confirms it
// with a first code, and removes one. Every form redirects back to the
// page (post/redirect/get) with a notice that only picks the words.

// mountSettingsPages registers the authenticator page and its forms on a
// CSRF-protected router.
func (s *Server) mountSettingsPages(pages *mux.Router) {
	pages.HandleFunc(PathSettingsTOTP, s.settingsTOTP).Methods(http.MethodGet)
	pages.HandleFunc(PathSettingsTOTP, s.settingsTOTPBegin).Methods(http.MethodPost)
	pages.HandleFunc(PathSettingsTOTPConfirm, s.settingsTOTPConfirm).Methods(http.MethodPost)
	pages.HandleFunc(PathSettingsTOTPDelete, s.settingsTOTPDelete).Methods(http.MethodPost)
}

// SettingsTOTPPage is the data of the "settings_totp" page.
type SettingsTOTPPage struct {
	// Email is who is signed in.
	Email string
	// Authenticators are the user's confirmed authenticator apps.
	Authenticators []AuthenticatorEntry
	// Enrollment is the enrollment waiting for its first code; nil offers
	// the button that begins one.
	Enrollment *EnrollmentView
	// Message is a notice ("Your authenticator app is set up."); Error says
	// why a form was refused.
	Message, Error string
	// CSRFField is the hidden CSRF input (csrfField(r)); every form carries it.
	CSRFField template.HTML
	// Action, ConfirmAction and DeleteAction are the forms' targets, under
	// the mount prefix when embedded; empty means "/settings/totp",
	// "/settings/totp/confirm" and "/settings/totp/delete".
	Action, ConfirmAction, DeleteAction string
}

// AuthenticatorEntry is one confirmed authenticator app, without its secret.
type AuthenticatorEntry struct {
	ID          string
	ConfirmedAt time.Time
	// LastUsedAt is when the time step of its last accepted code began
	// (the first code, which confirmed it, counts).
	LastUsedAt time.Time
}

// EnrollmentView is what an authenticator app needs to be set up.
type EnrollmentView struct {
	ID string
	// QRCode is a data: URI of a PNG of the otpauth:// URI.
	QRCode template.URL
	// URI is the otpauth:// URI itself (a link that opens an app on the
	// same device).
	URI template.URL
	// Secret is the base32 secret in groups of four, for typing it in.
	Secret string
	// Issuer and Account are what the app will show the entry as.
	Issuer, Account string
}

// Notices of the authenticator page's forms.
const (
	settingsNoticeConfirmed = "confirmed" // the enrollment is confirmed
	settingsNoticeWrong     = "wrong"     // a wrong first code
	settingsNoticeLocked    = "locked"    // otp.max_failures_per_user
	settingsNoticeExpired   = "expired"   // no enrollment waits for a code
	settingsNoticeRemoved   = "removed"   // an authenticator was removed
	settingsNoticeCancelled = "cancelled" // an enrollment was dropped
	settingsNoticeNotFound  = "not_found" // nothing of that id to remove
)

// qrCodeSize is the QR code's width and height in pixels; the stylesheet
// shows it smaller, pixels kept sharp.
const qrCodeSize = 256

// settingsSession is the browser's login session for the authenticator
// page, which needs one past the second factor: without a session the
// browser goes to /login and comes back (embedded, where the login is the
// host's, a 401 page asks to sign in); at the first factor a login code is
// on its way and the browser goes to the OTP page, coming back once it is
// right (a session from an account recovery, which no code passes, is told
// there to sign in again). A form posted then changes nothing. false: the
// answer is written.
func (s *Server) settingsSession(w http.ResponseWriter, r *http.Request) (*storage.LoginSession, *storage.User, bool) {
	here := s.mount.base + PathSettingsTOTP
	ls, user, err := s.currentSession(r)
	switch {
	case errors.Is(err, provider.ErrLoginSessionGone):
		if s.p.Embedded() {
			s.errorPage(w, r, http.StatusUnauthorized, "settings_totp.error.sign_in", err)
			return nil, nil, false
		}
		http.Redirect(w, r, PathLogin+"?"+url.Values{"return_to": {here}}.Encode(), http.StatusSeeOther)
		return nil, nil, false
	case err != nil:
		s.errorPage(w, r, http.StatusInternalServerError, "error.generic", err)
		return nil, nil, false
	case !ls.PassedLoginOTP:
		// A recovered session too: the OTP page sends it no code and
		// says to sign in again with the new password.
		if err := s.SendToOTP(w, r, ls, user, "", here); err != nil {
			s.errorPage(w, r, http.StatusInternalServerError, "error.generic", err)
		}
		return nil, nil, false
	}
	return ls, user, true
}

// settingsTOTP is GET /settings/totp: the user's authenticator apps, and
// the enrollment waiting for its first code or the button that begins one.
func (s *Server) settingsTOTP(w http.ResponseWriter, r *http.Request) {
	_, user, ok := s.settingsSession(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	page := SettingsTOTPPage{Email: user.Email, CSRFField: csrfField(r)}
	if s.mount.base != "" {
		page.Action = s.mount.base + PathSettingsTOTP
		page.ConfirmAction = s.mount.base + PathSettingsTOTPConfirm
		page.DeleteAction = s.mount.base + PathSettingsTOTPDelete
	}
	infos, err := s.p.ListTOTPs(ctx, user.ID)
	if err != nil {
		s.errorPage(w, r, http.StatusInternalServerError, "error.generic", err)
		return
	}
	for _, info := range infos {
		if info.Kind == provider.TOTPKindAuthenticator && info.Confirmed {
			page.Authenticators = append(page.Authenticators, AuthenticatorEntry{ID: info.ID, ConfirmedAt: info.ConfirmedAt, LastUsedAt: info.LastUsedAt})
		}
	}
	pending, err := s.p.PendingAuthenticatorTOTP(ctx, user)
	switch {
	case err == nil:
		view, err := enrollmentView(pending)
		if err != nil {
			s.errorPage(w, r, http.StatusInternalServerError, "error.generic", err)
			return
		}
		view.Issuer, view.Account = s.pages.Brand().ProductName, user.Email
		page.Enrollment = view
		AllowImageSources(w, "data:")
	case !errors.Is(err, provider.ErrTOTPNotFound):
		s.errorPage(w, r, http.StatusInternalServerError, "error.generic", err)
		return
	}
	if err := s.describeSettingsNotice(r, &page, user, r.URL.Query().Get("notice")); err != nil {
		s.errorPage(w, r, http.StatusInternalServerError, "error.generic", err)
		return
	}
	s.pages.Render(w, r, http.StatusOK, "settings_totp", page)
}

// describeSettingsNotice fills the page's message or error for the notice
// of the form that redirected here; the tries left after a wrong code are
// read from the database (otp.max_failures_per_user, which every wrong
// code of the user spends).
func (s *Server) describeSettingsNotice(r *http.Request, page *SettingsTOTPPage, user *storage.User, notice string) error {
	loc := s.pages.Locale(r)
	switch notice {
	case settingsNoticeConfirmed:
		page.Message = loc.T("settings_totp.notice.confirmed")
	case settingsNoticeRemoved:
		page.Message = loc.T("settings_totp.notice.removed")
	case settingsNoticeCancelled:
		page.Message = loc.T("settings_totp.notice.cancelled")
	case settingsNoticeNotFound:
		page.Error = loc.T("settings_totp.error.not_found")
	case settingsNoticeExpired:
		page.Error = loc.T("settings_totp.error.expired")
	case settingsNoticeWrong, settingsNoticeLocked:
		left, locked, err := s.p.OTPFailuresLeft(r.Context(), user)
		if err != nil {
			return err
		}
		switch {
		case locked != nil:
			page.Error = s.limitMessage(r, locked)
		case left == 1:
			page.Error = loc.T("settings_totp.error.wrong_left_one")
		default:
			page.Error = loc.T("settings_totp.error.wrong_left", "count", left)
		}
	}
	return nil
}

// enrollmentView renders k's QR code and writes its secret for reading.
func enrollmentView(k *provider.NewTOTP) (*EnrollmentView, error) {
	png, err := qrcode.Encode(k.URI, qrcode.Medium, qrCodeSize)
	if err != nil {
		return nil, fmt.Errorf("web: QR code of the otpauth URI: %w", err)
	}
	return &EnrollmentView{
		ID: k.ID,
		// Both are otpstep's own: a PNG it just encoded, and the URI
		// pquerna/otp wrote (scheme otpauth, values escaped).
		QRCode: template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(png)), //nolint:gosec // see above
		URI:    template.URL(k.URI),                                                             //nolint:gosec // see above
		Secret: groupSecret(k.Secret),
	}, nil
}

// groupSecret writes a base32 secret in groups of four characters, as
// authenticator apps accept it typed with or without the spaces.
func groupSecret(secret string) string {
	var b strings.Builder
	for i, c := range secret {
		if i > 0 && i%4 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// redirectToSettings ends a POST of the authenticator page: 303 to the
// page, with the notice that picks its words.
func (s *Server) redirectToSettings(w http.ResponseWriter, r *http.Request, notice string) {
	target := s.mount.base + PathSettingsTOTP
	if notice != "" {
		target += "?" + url.Values{"notice": {notice}}.Encode()
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// settingsPost is what every form of the authenticator page does first:
// read the form and check the session (settingsSession).
func (s *Server) settingsPost(w http.ResponseWriter, r *http.Request) (*storage.User, bool) {
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, r, http.StatusBadRequest, "error.form", err)
		return nil, false
	}
	_, user, ok := s.settingsSession(w, r)
	return user, ok
}

// settingsTOTPBegin is POST /settings/totp: a new enrollment (a new secret,
// replacing one not confirmed yet), shown by the page it redirects to.
func (s *Server) settingsTOTPBegin(w http.ResponseWriter, r *http.Request) {
	user, ok := s.settingsPost(w, r)
	if !ok {
		return
	}
	if _, err := s.p.BeginAuthenticatorTOTP(r.Context(), user); err != nil {
		s.errorPage(w, r, http.StatusInternalServerError, "error.generic", err)
		return
	}
	s.redirectToSettings(w, r, "")
}

// settingsTOTPConfirm is POST /settings/totp/confirm: the enrollment id's
// first code. A wrong one counts in otp.max_failures_per_user.
func (s *Server) settingsTOTPConfirm(w http.ResponseWriter, r *http.Request) {
	user, ok := s.settingsPost(w, r)
	if !ok {
		return
	}
	err := s.p.ConfirmAuthenticatorTOTP(r.Context(), user, r.PostForm.Get("id"), r.PostForm.Get("otp"))
	var tooMany *provider.TooManyAttemptsError
	switch {
	case err == nil:
		s.redirectToSettings(w, r, settingsNoticeConfirmed)
	case errors.Is(err, provider.ErrTOTPNotFound):
		s.redirectToSettings(w, r, settingsNoticeExpired)
	case errors.Is(err, provider.ErrOTPMismatch):
		s.redirectToSettings(w, r, settingsNoticeWrong)
	case errors.As(err, &tooMany):
		s.logLimited(r, tooMany)
		s.redirectToSettings(w, r, settingsNoticeLocked)
	default:
		s.errorPage(w, r, http.StatusInternalServerError, "error.generic", err)
	}
}

// settingsTOTPDelete is POST /settings/totp/delete: removes the user's
// authenticator id, or drops the enrollment id waiting for its code. Only
// authenticators: a device's TOTP is its app's (and support's, otpstep
// totp delete).
func (s *Server) settingsTOTPDelete(w http.ResponseWriter, r *http.Request) {
	user, ok := s.settingsPost(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	id := r.PostForm.Get("id")
	infos, err := s.p.ListTOTPs(ctx, user.ID)
	if err != nil {
		s.errorPage(w, r, http.StatusInternalServerError, "error.generic", err)
		return
	}
	notice := settingsNoticeNotFound
	for _, info := range infos {
		if info.ID != id || info.Kind != provider.TOTPKindAuthenticator {
			continue
		}
		err := s.p.DeleteTOTP(ctx, user.ID, id)
		switch {
		case errors.Is(err, provider.ErrTOTPNotFound):
		case err != nil:
			s.errorPage(w, r, http.StatusInternalServerError, "error.generic", err)
			return
		case info.Confirmed:
			notice = settingsNoticeRemoved
		default:
			notice = settingsNoticeCancelled
		}
	}
	s.redirectToSettings(w, r, notice)
}
