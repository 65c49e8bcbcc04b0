package web

import (
	"errors"
	"net/http"
	"strings"

	"github.com/otpstep/otpstep/provider"
	"github.com/otpstep/otpstep/storage"
)

// The login session cookie carries the sid and the session's browser key
// ("sid.key"), authenticated and encrypted with keys derived from
// secrets.system. The key changes at each step up (password, then the OTP
// page), so a copy of an older cookie opens nothing.

// setSessionCookie binds the browser to ls under its new key ls.BrowserKey.
func (s *Server) setSessionCookie(w http.ResponseWriter, ls *storage.LoginSession) error {
	if ls.BrowserKey == "" {
		return errors.New("web: session cookie: the login session has no new browser key")
	}
	name := s.p.Config().Login.CookieName
	v, err := s.cookies.Encode(name, ls.ID+"."+ls.BrowserKey)
	if err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{
		Name:     name,
		Value:    v,
		Path:     "/",
		Expires:  ls.ExpiresAt,
		MaxAge:   int(ls.ExpiresAt.Sub(s.p.Now()).Seconds()),
		HttpOnly: true,
		Secure:   s.secure,
		SameSite: http.SameSiteLaxMode,
	})
	return nil
}

func (s *Server) clearSessionCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{
		Name: s.p.Config().Login.CookieName, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: s.secure, SameSite: http.SameSiteLaxMode,
	})
}

// currentSession returns the live login session of the browser, or
// provider.ErrLoginSessionGone. Its sid comes from otpstep's session cookie,
// or from Options.SessionFromRequest when an embedding host keeps it.
func (s *Server) currentSession(r *http.Request) (*storage.LoginSession, *storage.User, error) {
	if s.opts.SessionFromRequest != nil {
		return s.p.LoginSession(r.Context(), s.opts.SessionFromRequest(r))
	}
	name := s.p.Config().Login.CookieName
	c, err := r.Cookie(name)
	if err != nil {
		return nil, nil, provider.ErrLoginSessionGone
	}
	var value string
	if err := s.cookies.Decode(name, c.Value, &value); err != nil {
		return nil, nil, provider.ErrLoginSessionGone
	}
	sid, key, ok := strings.Cut(value, ".")
	if !ok {
		return nil, nil, provider.ErrLoginSessionGone
	}
	return s.p.BrowserLoginSession(r.Context(), sid, key)
}
