package web

import (
	"context"
	"net/http"

	"github.com/otpstep/otpstep/provider"
	"github.com/otpstep/otpstep/storage"
)

// BeginLogin is the one way a login session starts after a first factor:
// the login form, a sign-in with an upstream, and an embedding host's
// plugin.BeginLogin all call it. The browser's previous login session, if r
// carries one, ends (no session fixation); a new one starts for userID with
// amr; login.passed is recorded with ip and detail; and, when w is set and
// the host does not keep the sid itself (Options.SessionFromRequest), the
// browser is bound to the new session by the session cookie. w and r may be
// nil for a login without a browser.
func (s *Server) BeginLogin(ctx context.Context, w http.ResponseWriter, r *http.Request, userID, ip string, detail map[string]any, amr ...string) (*storage.LoginSession, error) {
	if r != nil {
		if old, _, err := s.currentSession(r); err == nil {
			_ = s.p.EndLoginSession(ctx, old.ID)
		}
	}
	ls, err := s.p.StartLoginSession(ctx, userID, amr...)
	if err != nil {
		return nil, err
	}
	_ = s.p.Audit(ctx, provider.AuditEvent{Type: provider.AuditLoginPassed, UserID: userID, SessionID: ls.ID, IP: ip, Detail: detail})
	if w != nil && s.opts.SessionFromRequest == nil {
		if err := s.setSessionCookie(w, ls); err != nil {
			return nil, err
		}
	}
	return ls, nil
}
