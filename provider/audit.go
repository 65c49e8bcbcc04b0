package provider

import (
	"context"

	"github.com/otpstep/otpstep/storage"
)

// AuditEvent is a security-relevant event to record.
type AuditEvent = storage.AuditEvent

// The audit event types: every AuditEvent's Type is one of these.
const (
	AuditLoginPassed           = "login.passed"            // a first factor passed (password, upstream, or the host's login)
	AuditLoginFailed           = "login.failed"            // a password login failed
	AuditFederatedLoginRefused = "login.federated_refused" // a sign-in with an upstream was refused; Detail says why
	AuditSessionCreated        = "session.created"         // a login session was created through the session API
	AuditSessionPassRefused    = "session.pass_refused"    // a login UI's PUT passedLoginOTP was refused
	AuditSessionPassedViaPUT   = "session.passed_via_put"  // a login UI passed the second factor with PUT passedLoginOTP
	AuditSessionEnded          = "session.ended"           // a login session ended (logout)
	AuditOTPIssued             = "otp.issued"              // a one-time code was issued (and queued for mail)
	AuditOTPVerifyPassed       = "otp.verify_passed"       // a one-time code was verified
	AuditOTPVerifyFailed       = "otp.verify_failed"       // a one-time code was wrong
	AuditOTPChallengeBurned    = "otp.challenge_burned"    // a challenge used up its attempts
	AuditUserLockedOut         = "user.locked_out"         // a user reached otp.max_failures_per_user
	AuditUserDisabled          = "user.disabled"           // a user was disabled
	AuditRecoveryRequested     = "recovery.requested"      // an account recovery was asked for; Detail says whether a code was sent
	AuditRecoveryCompleted     = "recovery.completed"      // a recovery set a new password and ended every other session
	AuditPINSet                = "user.pin_set"            // a user set (or replaced) the PIN
	AuditTOTPCreated           = "totp.created"            // a TOTP was made (a device's, or an authenticator enrollment begun); Detail names kind and id
	AuditTOTPConfirmed         = "totp.confirmed"          // an authenticator enrollment was confirmed with a first code
	AuditTOTPDeleted           = "totp.deleted"            // a TOTP was removed
	AuditIdentityLinked        = "identity.linked"         // a link to an upstream subject was made
	AuditIdentityUnlinked      = "identity.unlinked"       // a link was removed
	AuditIdentityLinkRefused   = "identity.link_refused"   // a link was refused; Detail says why
	// AuditFederatedTokenGranted: GrantFederatedToken handed out the
	// upstream's token of a link; Detail says whether it was refreshed.
	AuditFederatedTokenGranted = "identity.token_granted"
	// AuditFederatedTokenDropped: a link's kept upstream tokens were dropped
	// (the upstream refused the refresh, or they expired without a refresh
	// token); Detail says why.
	AuditFederatedTokenDropped = "identity.token_dropped"
)

// Audit records an event. A failure to record is returned; callers on a
// path that already succeeded log it rather than fail the user.
func (p *Provider) Audit(ctx context.Context, e AuditEvent) error {
	if e.At.IsZero() {
		e.At = p.clock().UTC()
	}
	if err := p.store.AddAuditEvent(ctx, &e); err != nil {
		p.log.ErrorContext(ctx, "audit event not recorded", "type", e.Type, "err", err)
		return err
	}
	return nil
}
