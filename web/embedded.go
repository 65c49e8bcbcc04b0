package web

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/gorilla/mux"

	"github.com/otpstep/otpstep/storage"
)

// mountInfo is where MountSecondFactor mounted the server: under base (the
// host's path prefix, "" for the root). Whether the server is embedded is
// the provider's to say (Provider.Embedded).
type mountInfo struct {
	base string
}

// MountSecondFactor registers what an embedding host serves of otpstep on r:
// the user API under api.prefix, the OTP pages (/login/otp, its resend and
// authenticator forms, their static files), the authenticator page
// (/settings/totp and its forms) and linking an upstream identity in the browser
// (/federated-identities/{identityProvider}/link and its callback; signing in
// with an upstream is the host's login's business, so that route is not
// mounted). The host chooses the prefix: r may be a
// PathPrefix subrouter with a plain path ("/mfa"), and the pages link and
// redirect under it. The host's own fosite serves the OAuth2 endpoints and
// its own login, so nothing else is registered, otpstep's middleware applies
// to these routes only, and r's NotFoundHandler is left alone.
//
// gorilla/mux's Router cleans a path ("//x", "/a/./b") with a bare 301
// before any route or middleware runs; for otpstep to answer such a path
// under its prefix (a JSON:API 404 under the API prefix, else a 301 with
// its request id and security headers), call SkipClean(true) on the router
// the host serves.
//
// Call it once per Server, before serving; Mount and MountSecondFactor are
// alternatives.
func (s *Server) MountSecondFactor(r *mux.Router) {
	sub := r.NewRoute().Subrouter()
	// A path that is one of otpstep's once cleaned is answered first, with
	// otpstep's middleware (answerUncleanPath). It reaches here only when
	// the router the host serves skips mux's cleaning (SkipClean(true)),
	// which otherwise answers a bare 301 before any route or middleware.
	sub.MatcherFunc(func(req *http.Request, _ *mux.RouteMatch) bool {
		if !uncleanPath(req, nil) {
			return false
		}
		clean := cleanPath(req.URL.Path)
		if s.underAPIPrefix(clean) {
			return true
		}
		cleaned, u := *req, *req.URL
		u.Path, u.RawPath = clean, ""
		cleaned.URL = &u
		var m mux.RouteMatch
		return sub.Match(&cleaned, &m) || m.MatchErr == mux.ErrMethodMismatch
	}).HandlerFunc(s.answerUncleanPath)
	s.mountUserAPI(sub)
	pages := sub.NewRoute().Subrouter()
	pages.Use(s.csrf)
	page := s.mountOTPPages(pages)
	s.mountFederatedLinkPages(pages)
	s.mountSettingsPages(pages)
	tpl, err := page.GetPathTemplate()
	if err != nil || strings.ContainsAny(tpl, "{}") {
		s.log.Error("web: otpstep must be mounted under a plain path prefix", "template", tpl, "err", err)
	}
	s.mount = mountInfo{base: strings.TrimSuffix(tpl, PathOTP)}
	s.pages.SetStaticPrefix(s.mount.base + PathStatic)
	sub.PathPrefix(PathStatic).Handler(http.StripPrefix(s.mount.base+PathStatic, s.pages.StaticHandler()))

	// The OTP form's answer leads on to the host's authorize endpoint and
	// from there to a relying party's redirect URI; browsers apply
	// form-action to those redirects, so the OTP page admits that origin
	// (renderLeadingTo, through Options.AuthorizeRequests).
	sub.Use(s.middleware()...)
}

// safeReturnTo is the one check of a return_to (every page and redirect
// calls it): a local path (no scheme, host, user, "//", backslash or line
// break) that is one of otpstep's pages a login returns to (returnable), at
// the root or, embedded, under the mount prefix, or one of
// Options.ReturnPaths (an embedding host's authorize endpoints; a path
// ending in "/" admits the paths below it). So a return_to can never send the
// browser to another site.
func (s *Server) safeReturnTo(raw string) (string, bool) {
	if raw == "" || strings.HasPrefix(raw, "//") || strings.ContainsAny(raw, "\\\r\n") {
		return "", false
	}
	u, err := url.Parse(raw)
	if err != nil || u.IsAbs() || u.Host != "" || u.User != nil || !strings.HasPrefix(u.Path, "/") {
		return "", false
	}
	if returnable(u.Path, "") || s.mount.base != "" && returnable(u.Path, s.mount.base) {
		return u.String(), true
	}
	for _, p := range s.opts.ReturnPaths {
		if u.Path == p || strings.HasSuffix(p, "/") && strings.HasPrefix(u.Path, p) {
			return u.String(), true
		}
	}
	return "", false
}

// returnable reports whether path is, under base, a page a login returns
// to: the authorize endpoint (at the root only: embedded, the host's are
// Options.ReturnPaths), the OTP page, the authenticator page, or an
// upstream's link route (/federated-identities/{identityProvider}/link,
// where the OTP page returns a login that had not passed the second factor).
func returnable(path, base string) bool {
	rest, ok := strings.CutPrefix(path, base)
	if !ok {
		return false
	}
	switch rest {
	case PathOTP, PathSettingsTOTP:
		return true
	case PathAuthorize:
		return base == ""
	}
	if rest, ok = strings.CutPrefix(rest, PathFederatedIdentities); ok {
		name, ok := strings.CutSuffix(rest, "/link")
		return ok && name != "" && !strings.Contains(name, "/")
	}
	return false
}

// LoginSessionOf is the browser's live login session and its user (from the
// session cookie, or Options.SessionFromRequest), or
// provider.ErrLoginSessionGone.
func (s *Server) LoginSessionOf(r *http.Request) (*storage.LoginSession, *storage.User, error) {
	return s.currentSession(r)
}

// ClearLoginCookie removes otpstep's session cookie.
func (s *Server) ClearLoginCookie(w http.ResponseWriter) { s.clearSessionCookie(w) }
