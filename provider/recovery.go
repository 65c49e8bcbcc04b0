package provider

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/otpstep/otpstep/storage"
)

// Account recovery ("Forgot password?") in three steps: RequestRecovery mails
// a recovery code (an OTP of kind recovery, under the rules and send limits of
// every code), VerifyRecoveryCode checks it and answers a RecoveryGrant, and
// CompleteRecovery sets the new password with that grant, ends every session
// of the user and starts one recovered session.
//
// A recovery by email is not a second factor. The recovered session stays at
// aal1 (acr), with amr ["otp"] (RFC 8176: it was an emailed one-time code),
// and no emailed code lifts it to aal2 (storage refuses to pass a recovered
// session): the mailbox that proved the recovery would otherwise prove the
// second factor too. The user's next login asks for the new password and the
// second factor.
//
// No answer says whether an account has the address: an unknown address, a
// disabled account and a send limit that held the code back all answer as a
// sent code does (the audit trail and the log say which); the request and
// code limits count per address and per IP, whoever has the address.

// ErrRecoveryExpired means a RecoveryGrant can no longer set a password: it
// expired, was used (the password changed since), or its user is gone or
// disabled.
var ErrRecoveryExpired = errors.New("the account recovery expired or was used")

// ErrRecoveredSession means the login session came from an account recovery
// by email: no emailed code passes its second factor (no login code is sent
// for it, PUT passedLoginOTP refuses it); the user signs in again, with the
// new password, for a session that can.
var ErrRecoveredSession = fmt.Errorf("the login session came from an account recovery by email: %w", storage.ErrSessionRecovered)

// RecoveryGrant is what a matched recovery code allows: setting a new password
// for UserID until ExpiresAt, once. The web layer keeps it sealed in a cookie.
// PasswordMark binds it to the password hash the user had when the code
// matched (a keyed hash of it, never the hash itself), so it sets a password
// once: afterwards the hash is another.
//
// TOTP says the user's authenticator app passed too (VerifyRecoveryTOTP): a
// user with a confirmed authenticator TOTP sets no password without it.
type RecoveryGrant struct {
	UserID       string    `json:"u"`
	ExpiresAt    time.Time `json:"e"`
	PasswordMark []byte    `json:"m"`
	TOTP         bool      `json:"t,omitempty"`
}

// ErrRecoveryNeedsTOTP means the grant's user has a confirmed authenticator
// TOTP and the grant did not pass it (VerifyRecoveryTOTP): the mailbox alone
// does not set the password of such a user. The grant stays usable.
var ErrRecoveryNeedsTOTP = errors.New("the account recovery needs a code of the user's authenticator app")

// Rate-counter keys of the recovery limits, per normalized address and per IP.
func recoveryRequestKey(email string) string { return "recovery:requests:account:" + email }
func recoveryRequestIPKey(ip string) string  { return "recovery:requests:ip:" + ip }
func recoveryCodeKey(email string) string    { return "recovery:code:account:" + email }
func recoveryCodeIPKey(ip string) string     { return "recovery:code:ip:" + ip }

// recoveryFailuresKey counts an address's wrong recovery codes per
// otp.failure_window up to otp.max_failures_per_user, whether or not an
// account has the address: the user's own recovery counter
// (otpFailureKey) refuses at the same try, so that limit's refusal does not
// tell a known address from an unknown one.
func recoveryFailuresKey(email string) string { return "recovery:failures:account:" + email }

// normalizeRecoveryEmail is the address as users are stored (lower-cased),
// or ErrInvalidInput when it is not one address.
func normalizeRecoveryEmail(email string) (string, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	addr, err := mail.ParseAddress(email)
	if err != nil || addr.Address != email {
		return "", fmt.Errorf("%w: %q is not an email address", ErrInvalidInput, email)
	}
	return email, nil
}

// RecoveryRequest asks for a recovery code: for which address, and who asks
// (the client IP for the limits, the OAuth2 client the login was for, if any,
// and the language of the mail).
type RecoveryRequest struct {
	Email    string
	IP       string
	ClientID string
	// Locale is the language of the mail (OTPRequest.Locale).
	Locale string
}

// RequestRecovery mails a recovery code to req.Email when an enabled account
// has it. It answers nil whether or not a code was sent (the caller must
// say the same either way), ErrInvalidInput for something that is not an
// email address, or *TooManyAttemptsError when recovery.max_requests_per_account
// (per address, counted whether or not an account has it) or
// recovery.max_requests_per_ip is used up in recovery.window.
//
// A code that the send limits hold back (otp.resend_interval,
// otp.max_sends_per_hour) is not sent and the answer is still nil; the
// audit event recovery.requested says whether a code went out and, if not,
// why. The code's mail is drawn and sealed for an unknown address too, so
// both answers cost about the same.
func (p *Provider) RequestRecovery(ctx context.Context, req RecoveryRequest) error {
	email, err := normalizeRecoveryEmail(req.Email)
	if err != nil {
		return err
	}
	window := p.cfg.Recovery.Window
	limits := []struct {
		hit  storage.RateHit
		name string
	}{
		{storage.RateHit{Key: recoveryRequestKey(email), Window: window, Max: p.cfg.Recovery.MaxRequestsPerAccount}, "recovery.max_requests_per_account"},
		{storage.RateHit{Key: recoveryRequestIPKey(req.IP), Window: window, Max: p.cfg.Recovery.MaxRequestsPerIP}, "recovery.max_requests_per_ip"},
	}
	counts, reserved, err := p.store.ReserveRateCounters(ctx, limits[0].hit, limits[1].hit)
	if err != nil {
		return err
	}
	if !reserved {
		for i, l := range limits {
			if counts[i].Count > l.hit.Max {
				e := &TooManyAttemptsError{Limit: l.name, RetryAfter: counts[i].ResetAt.Sub(p.clock())}
				if i == 1 {
					e.IP = req.IP
				}
				return p.countRefusal(e)
			}
		}
		return fmt.Errorf("provider: recovery request refused within its limits: %v", counts)
	}
	// A new code gets its tries afresh: the per-address code limit counts
	// the tries since the latest request.
	if err := p.store.ResetRateCounter(ctx, recoveryCodeKey(email)); err != nil {
		return err
	}
	user, err := p.store.GetUserByEmail(ctx, email)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	known := err == nil && !user.Disabled
	if !known {
		user = &storage.User{Email: email}
	}
	o, err := p.newOTP(ctx, OTPRequest{Kind: OTPKindRecovery, User: user, ClientID: req.ClientID, IP: req.IP, Locale: req.Locale})
	if err != nil {
		return err
	}
	requested := &AuditEvent{At: o.now, Type: AuditRecoveryRequested, UserID: user.ID, ClientID: req.ClientID, IP: req.IP,
		Detail: map[string]any{"sent": known}}
	if !known {
		reason := "unknown email"
		if user.ID != "" {
			reason = "account disabled"
		}
		requested.Detail["reason"], requested.Detail["email"] = reason, email
		p.log.InfoContext(ctx, "recovery code not sent", "reason", reason, "user_id", user.ID)
		return p.writeAudit(ctx, requested)
	}
	err = p.store.InTx(ctx, func(ctx context.Context) error { return p.storeOTP(ctx, o, requested) })
	var tooMany *TooManyAttemptsError
	if errors.As(err, &tooMany) {
		// Held back by a send limit: said only to the log and the audit trail.
		p.countRefusal(err)
		p.log.InfoContext(ctx, "recovery code not sent", "reason", "send limit", "limit", tooMany.Limit, "user_id", user.ID)
		requested.Detail = map[string]any{"sent": false, "reason": tooMany.Limit}
		return p.writeAudit(ctx, requested)
	}
	if err != nil {
		return err
	}
	p.notifyOutbox()
	p.metrics.CodeIssued(o.req.Kind, o.req.InResponse)
	return nil
}

// VerifyRecoveryCode checks a recovery code typed for email. It answers a
// RecoveryGrant valid for otp.ttl when the code matched the address's live
// recovery challenge (consumed by this call); *OTPMismatchError
// (ErrOTPMismatch) for a wrong or expired code, an unknown address or a
// disabled account alike, with the tries the address has left of
// otp.max_attempts since its latest request (0: ask for a new code); or
// *TooManyAttemptsError.
//
// Every try first reserves a failure on two counters, atomically, before the
// code is compared (as Authenticate does): otp.max_attempts per address in
// otp.ttl (since the latest request, whether or not an account has the
// address, so the answers are the same for both) and
// recovery.max_code_failures_per_ip per recovery.window, and
// otp.max_failures_per_user per otp.failure_window per address (the user's
// own limit, counted per address too so that it refuses an unknown address
// at the same try). A wrong code keeps them; the right one resets the
// address's attempts and gives the others back.
// The challenge's own attempts (otp.max_attempts) and the user's recovery
// failures (otp.max_failures_per_user per otp.failure_window, counted apart
// from the login codes' so that recovery tries cannot lock a user's sign-in)
// apply as to every code.
func (p *Provider) VerifyRecoveryCode(ctx context.Context, email, code, ip string) (*RecoveryGrant, error) {
	email, err := normalizeRecoveryEmail(email)
	if err != nil {
		return nil, ErrOTPMismatch
	}
	limits := []struct {
		hit  storage.RateHit
		name string
	}{
		{storage.RateHit{Key: recoveryCodeKey(email), Window: p.cfg.OTP.TTL, Max: p.cfg.OTP.MaxAttempts}, "otp.max_attempts"},
		{storage.RateHit{Key: recoveryCodeIPKey(ip), Window: p.cfg.Recovery.Window, Max: p.cfg.Recovery.MaxCodeFailuresPerIP}, "recovery.max_code_failures_per_ip"},
		{storage.RateHit{Key: recoveryFailuresKey(email), Window: p.cfg.OTP.FailureWindow, Max: p.cfg.OTP.MaxFailuresPerUser}, "otp.max_failures_per_user"},
	}
	counts, reserved, err := p.store.ReserveRateCounters(ctx, limits[0].hit, limits[1].hit, limits[2].hit)
	if err != nil {
		return nil, err
	}
	if !reserved {
		for i, l := range limits {
			if counts[i].Count > l.hit.Max {
				e := &TooManyAttemptsError{Limit: l.name, RetryAfter: counts[i].ResetAt.Sub(p.clock())}
				if i == 1 {
					e.IP = ip
				}
				return nil, p.countRefusal(e)
			}
		}
		return nil, fmt.Errorf("provider: recovery code try refused within its limits: %v", counts)
	}
	giveBack := func() error {
		return errors.Join(p.giveBackLoginFailure(ctx, limits[0].hit.Key, counts[0]), p.giveBackLoginFailure(ctx, limits[1].hit.Key, counts[1]), p.giveBackLoginFailure(ctx, limits[2].hit.Key, counts[2]))
	}
	// A wrong code tells the tries the address has left, counted alike
	// whether or not an account has it.
	mismatch := &OTPMismatchError{AttemptsLeft: max(limits[0].hit.Max-counts[0].Count, 0)}
	user, err := p.store.GetUserByEmail(ctx, email)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		p.log.InfoContext(ctx, "recovery code refused", "reason", "unknown email")
		return nil, mismatch
	case err != nil:
		return nil, errors.Join(err, giveBack())
	case user.Disabled:
		p.log.InfoContext(ctx, "recovery code refused", "reason", "account disabled", "user_id", user.ID)
		return nil, mismatch
	}
	_, err = p.VerifyOTP(ctx, []string{OTPKindRecovery}, user, "", code)
	var tooMany *TooManyAttemptsError
	switch {
	case err == nil:
	case errors.Is(err, ErrOTPMismatch):
		return nil, mismatch
	case errors.As(err, &tooMany) && tooMany.Limit == "otp.max_attempts":
		// The code this address was sent is used up (a send limit then
		// held its next one back): answered as a wrong code, with the
		// tries the address has left, which is what an unknown address
		// answers; the address's own limit above refuses both alike.
		return nil, mismatch
	case errors.As(err, &tooMany):
		return nil, err
	default:
		return nil, errors.Join(err, giveBack())
	}
	if err := p.store.ResetRateCounter(ctx, limits[0].hit.Key); err != nil {
		return nil, err
	}
	if err := p.store.ReleaseRateCounter(ctx, limits[1].hit.Key, counts[1].ResetAt); err != nil {
		return nil, err
	}
	if err := p.store.ReleaseRateCounter(ctx, limits[2].hit.Key, counts[2].ResetAt); err != nil {
		return nil, err
	}
	return &RecoveryGrant{UserID: user.ID, ExpiresAt: p.clock().UTC().Add(p.cfg.OTP.TTL), PasswordMark: p.recoveryMark(user)}, nil
}

// recoveryMark is the keyed hash that binds a RecoveryGrant to u's current
// password hash.
func (p *Provider) recoveryMark(u *storage.User) []byte {
	return p.otpHash.hash("", "recovery-grant", "", u.ID, u.PasswordHash)
}

// grantUser is the user a RecoveryGrant may still act for: unexpired, the
// user there and enabled, the password hash the one the code matched for;
// else ErrRecoveryExpired.
func (p *Provider) grantUser(ctx context.Context, g *RecoveryGrant) (*storage.User, error) {
	if g == nil || !p.clock().Before(g.ExpiresAt) {
		return nil, ErrRecoveryExpired
	}
	u, err := p.store.GetUser(ctx, g.UserID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, ErrRecoveryExpired
	}
	if err != nil {
		return nil, err
	}
	if u.Disabled || subtle.ConstantTimeCompare(p.recoveryMark(u), g.PasswordMark) != 1 {
		return nil, ErrRecoveryExpired
	}
	return u, nil
}

// RecoveryNeedsTOTP says whether the grant's user must pass an authenticator
// code (VerifyRecoveryTOTP) before CompleteRecovery: the user has a
// confirmed authenticator TOTP and the grant has not passed it.
func (p *Provider) RecoveryNeedsTOTP(ctx context.Context, g *RecoveryGrant) (bool, error) {
	if g == nil || g.TOTP {
		return false, nil
	}
	return p.HasAuthenticatorTOTP(ctx, g.UserID)
}

// VerifyRecoveryTOTP checks a code of the grant's user's authenticator app
// during a recovery, after the emailed recovery code matched: it answers
// the grant with TOTP set when the code matched a confirmed authenticator
// TOTP. It is the TOTP verification of the sign-in (VerifyOTP of kind
// totp, ±1 step): each step is accepted once (a code used to sign in, or
// here, is refused), and a wrong code counts in otp.max_failures_per_user on
// the user's sign-in counter, since it is a guess at the second factor
// (*TooManyAttemptsError past it). A wrong code, or a user without an
// authenticator, is ErrOTPMismatch; a grant that can no longer set a
// password is ErrRecoveryExpired. No login session passes: the recovered
// session stays aal1.
func (p *Provider) VerifyRecoveryTOTP(ctx context.Context, g *RecoveryGrant, code string) (*RecoveryGrant, error) {
	u, err := p.grantUser(ctx, g)
	if err != nil {
		return nil, err
	}
	if _, err := p.VerifyOTP(ctx, []string{OTPKindTOTP}, u, "", code); err != nil {
		return nil, err
	}
	passed := *g
	passed.TOTP = true
	return &passed, nil
}

// CompleteRecovery sets newPassword (the password rules of CreateUser,
// hashed with argon2id) for the grant's user, and in the same transaction
// ends every login session of the user, revokes every code and token issued
// to the user, burns the user's live codes, starts the recovered login
// session it returns (with a browser key for the cookie: acr aal1, amr
// ["otp"], never lifted to aal2 by an emailed code) and records
// recovery.completed. The user's login failures are forgotten (the account
// limit of login.max_failures_per_account).
//
// An expired or used grant, or a user gone or disabled since →
// ErrRecoveryExpired, nothing changed; a password the rules refuse →
// ErrInvalidInput, and a user with a confirmed authenticator TOTP whose
// grant did not pass it (VerifyRecoveryTOTP) → ErrRecoveryNeedsTOTP: the
// grant stays usable after both.
func (p *Provider) CompleteRecovery(ctx context.Context, g *RecoveryGrant, newPassword, ip, clientID string) (*storage.LoginSession, *storage.User, error) {
	now := p.clock().UTC()
	u, err := p.grantUser(ctx, g)
	if err != nil {
		return nil, nil, err
	}
	if err := checkPasswordRules(newPassword); err != nil {
		return nil, nil, err
	}
	if needs, err := p.RecoveryNeedsTOTP(ctx, g); err != nil {
		return nil, nil, err
	} else if needs {
		return nil, nil, ErrRecoveryNeedsTOTP
	}
	hash, err := p.hashPassword(ctx, newPassword)
	if err != nil {
		return nil, nil, err
	}
	ls := &storage.LoginSession{ID: uuid.NewString(), UserID: u.ID, AMR: []string{AMROTP}, AuthTime: now,
		ExpiresAt: now.Add(p.cfg.Login.SessionLifespan)}
	if err := p.issueBrowserKey(ls); err != nil {
		return nil, nil, err
	}
	err = p.store.ResetPassword(ctx, &storage.PasswordReset{UserID: u.ID, OldPasswordHash: u.PasswordHash, NewPasswordHash: hash,
		Session: ls, Events: []*AuditEvent{{At: now, Type: AuditRecoveryCompleted, UserID: u.ID, SessionID: ls.ID, ClientID: clientID, IP: ip}}})
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil, ErrRecoveryExpired
	}
	if err != nil {
		return nil, nil, err
	}
	if err := p.store.ResetRateCounter(ctx, loginAccountKey(u.Email)); err != nil {
		p.log.WarnContext(ctx, "login failures not reset after a recovery", "user_id", u.ID, "err", err)
	}
	u.PasswordHash = hash
	return ls, u, nil
}
