package provider

import (
	"context"
	"errors"
	"slices"

	"github.com/otpstep/otpstep/storage"
)

// ErrSessionNotFound means the session does not exist for this user: unknown,
// expired, or another user's (which must look exactly like unknown).
var ErrSessionNotFound = errors.New("login session not found")

// UpdateSessionOTP is PACE's PUT /sessions/{sessionId}
// (docs/pace-update-session.txt, docs/api.md) for req.User and the session
// req.SessionID (req.Kind is set to login):
//   - passed=false on an unknown session creates it and issues a login OTP;
//   - passed=false on the user's session sets it back to not passed and
//     issues a new OTP (the live one is burned);
//   - passed=true passes the second factor (nil IssuedOTP), repeatable,
//     for a login UI only (req.LoginUI): any other client is ErrNotLoginUI,
//     recorded in the audit trail, and the session is left as it was;
//   - passed=true on an unknown session, or any call on another user's
//     session, is ErrSessionNotFound.
//
// passed=false is one transaction: the session (created, or reset), the send
// limits, the challenge, its mail and the audit events all land, or none does.
func (p *Provider) UpdateSessionOTP(ctx context.Context, req OTPRequest, passed bool) (*IssuedOTP, error) {
	req.Kind = OTPKindLogin
	if passed {
		if !req.LoginUI {
			_ = p.Audit(ctx, AuditEvent{Type: AuditSessionPassRefused, UserID: req.User.ID, SessionID: req.SessionID,
				ClientID: req.ClientID, IP: req.IP, Detail: map[string]any{"reason": "not-login-ui"}})
			return nil, ErrNotLoginUI
		}
		err := p.passSecondFactor(ctx, req.SessionID, req.User.ID, &AuditEvent{Type: AuditSessionPassedViaPUT,
			UserID: req.User.ID, SessionID: req.SessionID, ClientID: req.ClientID, IP: req.IP})
		return nil, err
	}
	o, err := p.newOTP(ctx, req)
	if err != nil {
		return nil, err
	}
	// Most calls create the session: one transaction stores it with its
	// first challenge, mail and events, if the send limits allow.
	created := &AuditEvent{At: o.now, Type: AuditSessionCreated, UserID: req.User.ID,
		SessionID: req.SessionID, ClientID: req.ClientID, IP: req.IP}
	limits := p.sendLimits(o)
	err = p.store.CreateSessionChallenge(ctx, &storage.NewSessionChallenge{
		Session: &storage.LoginSession{
			ID:        req.SessionID,
			UserID:    req.User.ID,
			AMR:       []string{AMRPassword},
			AuthTime:  o.now,
			ExpiresAt: o.now.Add(p.cfg.Login.SessionLifespan),
		},
		NewChallenge: o.newChallenge(limits, []*AuditEvent{created, o.issuedEvent()}),
	})
	err = o.sendLimitError(limits, err)
	if errors.Is(err, storage.ErrAlreadyExists) {
		// The id is taken: the user's live session is challenged again; an
		// expired row or another user's session is never taken over.
		err = p.store.InTx(ctx, func(ctx context.Context) error {
			ls, err := p.usersLiveSession(ctx, req)
			if err != nil {
				return err
			}
			if ls.Recovered {
				return ErrRecoveredSession
			}
			if err := p.storeOTP(ctx, o); err != nil {
				return err
			}
			if ls.PassedLoginOTP || slices.Contains(ls.AMR, AMROTP) {
				ls.PassedLoginOTP = false
				ls.AMR = slices.DeleteFunc(ls.AMR, func(m string) bool { return m == AMROTP })
				return p.store.UpdateLoginSession(ctx, ls)
			}
			return nil
		})
	}
	if err != nil {
		return nil, p.countRefusal(err)
	}
	p.notifyOutbox()
	p.metrics.CodeIssued(o.req.Kind, o.req.InResponse)
	return o.issued(), nil
}

// usersLiveSession is req.SessionID's session if it is live and req.User's,
// else ErrSessionNotFound.
func (p *Provider) usersLiveSession(ctx context.Context, req OTPRequest) (*storage.LoginSession, error) {
	ls, err := p.store.GetLoginSession(ctx, req.SessionID)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return nil, ErrSessionNotFound
	case err != nil:
		return nil, err
	case ls.UserID != req.User.ID || !p.clock().Before(ls.ExpiresAt):
		return nil, ErrSessionNotFound
	}
	return ls, nil
}
