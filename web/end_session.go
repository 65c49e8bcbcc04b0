package web

import (
	"errors"
	"net/http"
	"net/url"

	"github.com/otpstep/otpstep/provider"
)

// The parameters of an RP-initiated logout request (OpenID Connect
// RP-Initiated Logout 1.0 §2), on PathEndSession and carried by its
// confirmation form to PathLogout.
const (
	paramIDTokenHint           = "id_token_hint"
	paramClientID              = "client_id"
	paramPostLogoutRedirectURI = "post_logout_redirect_uri"
	paramState                 = "state"
	paramUILocales             = "ui_locales"
)

var logoutParams = []string{paramIDTokenHint, paramClientID, paramPostLogoutRedirectURI, paramState, paramUILocales}

// invalidLogoutMessage is the catalog key of what the user reads of a
// refused logout request (an unverifiable hint, an unregistered
// post_logout_redirect_uri): nothing of which check failed, as for a bad
// redirect_uri.
const invalidLogoutMessage = "error.oauth.invalid_logout"

// endSessionPost is POST PathEndSession: a relying party may send the
// request as a form (§2). It carries no CSRF token of ours, so it changes
// nothing: the browser is sent to GET PathEndSession with the same
// parameters, which decides.
func (s *Server) endSessionPost(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, r, http.StatusBadRequest, "error.form", err)
		return
	}
	q := url.Values{}
	for _, k := range logoutParams {
		if v := r.PostForm.Get(k); v != "" {
			q.Set(k, v)
		}
	}
	http.Redirect(w, r, s.mount.base+PathEndSession+"?"+q.Encode(), http.StatusSeeOther)
}

// endSession is GET PathEndSession, the end_session_endpoint:
//
//  1. the request is checked (provider.CheckLogout); a refused one is an
//     error page, and its post_logout_redirect_uri is never followed;
//  2. a browser already signed out is not asked anything: it goes to the
//     redirect URI (with state), or sees the signed-out page;
//  3. when the hint's sid is the browser's login session, the session ends
//     at once (the relying party proved it knows it), then as in 2;
//  4. otherwise the browser is asked, and the confirmation form posts the
//     request to PathLogout (CSRF-protected), which checks it again.
func (s *Server) endSession(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	lo, ok := s.checkLogout(w, r, q)
	if !ok {
		return
	}
	ls, _, err := s.currentSession(r)
	switch {
	case errors.Is(err, provider.ErrLoginSessionGone):
		s.clearSessionCookie(w)
		s.signedOut(w, r, lo)
		return
	case err != nil:
		s.errorPage(w, r, http.StatusInternalServerError, "error.generic", err)
		return
	case lo.SessionID != "" && lo.SessionID == ls.ID:
		s.logOut(w, r, lo)
		return
	}
	page := LogoutPage{CSRFField: csrfField(r), Action: s.mount.base + PathLogout}
	if v := q.Get(paramUILocales); v != "" {
		page.Action += "?" + url.Values{paramUILocales: {v}}.Encode()
	}
	for _, k := range logoutParams {
		if v := q.Get(k); v != "" && k != paramUILocales {
			page.Carried = append(page.Carried, HiddenField{Name: k, Value: v})
		}
	}
	if lo.RedirectTo != "" {
		u, _ := url.Parse(lo.RedirectTo) // CheckLogout built it
		AllowFormActions(w, FormActionSource(u))
	}
	s.pages.Render(w, r, http.StatusOK, "logout_confirm", page)
}

// checkLogout checks the logout request in form (provider.CheckLogout),
// answering a refused one with the error page (false).
func (s *Server) checkLogout(w http.ResponseWriter, r *http.Request, form url.Values) (*provider.Logout, bool) {
	lo, err := s.p.CheckLogout(r.Context(), provider.LogoutRequest{
		IDTokenHint:           form.Get(paramIDTokenHint),
		ClientID:              form.Get(paramClientID),
		PostLogoutRedirectURI: form.Get(paramPostLogoutRedirectURI),
		State:                 form.Get(paramState),
	})
	switch {
	case errors.Is(err, provider.ErrInvalidLogoutRequest):
		s.errorPage(w, r, http.StatusBadRequest, invalidLogoutMessage, err)
		return nil, false
	case err != nil:
		s.errorPage(w, r, http.StatusInternalServerError, "error.generic", err)
		return nil, false
	}
	return lo, true
}

// signedOut sends a signed-out browser on: to the logout's checked redirect
// URI when it has one, else to the signed-out page.
func (s *Server) signedOut(w http.ResponseWriter, r *http.Request, lo *provider.Logout) {
	if lo != nil && lo.RedirectTo != "" {
		http.Redirect(w, r, lo.RedirectTo, http.StatusSeeOther)
		return
	}
	s.pages.Render(w, r, http.StatusOK, "logged_out", nil)
}
