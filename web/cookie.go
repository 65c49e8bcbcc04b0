package web

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/otpstep/otpstep/provider"
	"github.com/otpstep/otpstep/storage"
)

// The login session cookie carries the sid and the session's browser key
// ("sid.key"), sealed (provider.Sealer, purpose "session-cookie") and bound
// to the cookie's name; it lives as long as the login session it names. The key changes at each step up (password, then the OTP
// page), so a copy of an older cookie opens nothing.

// setSessionCookie binds the browser to ls under its new key ls.BrowserKey.
func (s *Server) setSessionCookie(w http.ResponseWriter, ls *storage.LoginSession) error {
	if ls.BrowserKey == "" {
		return errors.New("web: session cookie: the login session has no new browser key")
	}
	name := s.p.Config().Login.CookieName
	v, err := sealCookie(s.cookies, []byte(ls.ID+"."+ls.BrowserKey), sessionCookieAD(name))
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
	value, err := openCookie(s.cookies, c.Value, sessionCookieAD(name))
	if err != nil {
		return nil, nil, provider.ErrLoginSessionGone
	}
	sid, key, ok := strings.Cut(string(value), ".")
	if !ok {
		return nil, nil, provider.ErrLoginSessionGone
	}
	return s.p.BrowserLoginSession(r.Context(), sid, key)
}

// sessionCookieAD binds a sealed session cookie to its name.
func sessionCookieAD(name string) []byte { return []byte("session\x00" + name) }

// sealCookie is the one way otpstep seals a cookie's value (the login
// session's and an upstream flow's): provider.Sealer's AES-256-GCM bound to
// ad, base64url without padding.
func sealCookie(sealer *provider.Sealer, plain, ad []byte) (string, error) {
	sealed, err := sealer.Seal(plain, ad)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(sealed), nil
}

// openCookie reverses sealCookie; any change to the value, or other ad,
// is an error.
func openCookie(sealer *provider.Sealer, value string, ad []byte) ([]byte, error) {
	sealed, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", provider.ErrSealedDataInvalid, err)
	}
	return sealer.Open(sealed, ad)
}
