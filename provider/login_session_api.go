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

// UpdateSessionOTP is the seed's PUT /sessions/{sessionId} for user:
//   - passed=false on an unknown session creates it and issues a login OTP;
//   - passed=false on the user's session sets it back to not passed and
//     issues a new OTP (the live one is burned);
//   - passed=true passes the second factor (nil IssuedOTP), repeatable;
//   - passed=true on an unknown session, or any call on another user's
//     session, is ErrSessionNotFound.
func (p *Provider) UpdateSessionOTP(ctx context.Context, user *storage.User, sessionID string, passed bool, clientID string) (*IssuedOTP, error) {
	ls, err := p.store.GetLoginSession(ctx, sessionID)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		if passed {
			return nil, ErrSessionNotFound
		}
		return p.createSessionWithOTP(ctx, user, sessionID, clientID)
	case err != nil:
		return nil, err
	case ls.UserID != user.ID || !p.clock().Before(ls.ExpiresAt):
		return nil, ErrSessionNotFound
	}
	if passed {
		if err := p.passSecondFactor(ctx, sessionID); err != nil {
			return nil, err
		}
		_ = p.Audit(ctx, AuditEvent{Type: "session.passed_via_put", UserID: user.ID, SessionID: sessionID, ClientID: clientID})
		return nil, nil
	}
	issued, err := p.IssueOTP(ctx, OTPKindLogin, user, sessionID, clientID)
	if err != nil {
		return nil, err
	}
	if ls.PassedLoginOTP || slices.Contains(ls.AMR, AMROTP) {
		ls.PassedLoginOTP = false
		ls.AMR = slices.DeleteFunc(ls.AMR, func(m string) bool { return m == AMROTP })
		if err := p.store.UpdateLoginSession(ctx, ls); err != nil {
			return nil, err
		}
	}
	return issued, nil
}

func (p *Provider) createSessionWithOTP(ctx context.Context, user *storage.User, sessionID, clientID string) (*IssuedOTP, error) {
	now := p.clock().UTC()
	ls := &storage.LoginSession{
		ID:        sessionID,
		UserID:    user.ID,
		AMR:       []string{AMRPassword},
		AuthTime:  now,
		ExpiresAt: now.Add(p.cfg.Login.SessionLifespan),
	}
	if err := p.store.CreateLoginSession(ctx, ls); err != nil {
		if errors.Is(err, storage.ErrAlreadyExists) {
			// An expired row with this id, or a race with another create:
			// never take over a row; the caller sees not-found.
			return nil, ErrSessionNotFound
		}
		return nil, err
	}
	issued, err := p.IssueOTP(ctx, OTPKindLogin, user, sessionID, clientID)
	if err != nil {
		// Nothing half-made stays behind.
		if derr := p.store.DeleteLoginSession(ctx, sessionID); derr != nil {
			p.log.ErrorContext(ctx, "session left without otp", "session_id", sessionID, "err", derr)
		}
		return nil, err
	}
	_ = p.Audit(ctx, AuditEvent{Type: "session.created", UserID: user.ID, SessionID: sessionID, ClientID: clientID})
	return issued, nil
}
