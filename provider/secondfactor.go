package provider

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/google/uuid"

	"github.com/otpstep/otpstep/provider/outbox"
	"github.com/otpstep/otpstep/storage"
)

// ErrOTPMismatch is every failed verification a caller may learn about:
// wrong code, no live challenge, expired challenge. The real cause is logged.
var ErrOTPMismatch = errors.New("one-time password does not match")

// OTPMismatchError is ErrOTPMismatch (errors.Is) for a wrong code that spent
// an attempt of a live challenge: what the user may be told about that
// challenge, the same whatever the code was. AttemptsLeft 0 means this try
// burned the challenge (otp.max_attempts): the next one needs a new code.
type OTPMismatchError struct {
	AttemptsLeft int
}

func (e *OTPMismatchError) Error() string        { return ErrOTPMismatch.Error() }
func (e *OTPMismatchError) Is(target error) bool { return target == ErrOTPMismatch }

// IssuedOTP is a code that was created and queued for email.
type IssuedOTP struct {
	ChallengeID string
	Code        string
	ExpiresAt   time.Time
	// InResponse says whether Code may leave in the HTTP response (the
	// request's InResponse, as newOTP settled it); otherwise it goes by mail
	// only.
	InResponse bool
}

// OTPRequest asks for a one-time password: what for and who asks.
type OTPRequest struct {
	Kind      string        // OTPKindLogin (a session's second factor) or OTPKindAccount (re-authentication)
	User      *storage.User // whose code it is; the mail goes to User.Email
	SessionID string        // the login session of a login OTP; "" for an account OTP
	// Who asks, for the otp.issued audit event: the OAuth2 client (if any),
	// the caller's address, and whether the code also leaves in the HTTP
	// response (otp.return_in_response) rather than by mail alone.
	ClientID   string
	IP         string
	InResponse bool
	// LoginUI: the client is a login UI (storage.Client.LoginUI, or the
	// host's Options.LoginUIClient). Only a login UI may pass a session's
	// second factor itself (UpdateSessionOTP with passed=true) or receive a
	// login code in the response; for any other client a login code goes
	// by mail only, whatever InResponse asks.
	LoginUI bool
	// Locale is the language tag the mail is written in ("de"; see
	// i18n.Catalogs.Match); empty is ui.default_locale.
	Locale string
}

// ErrNotLoginUI means the client is not registered as a login UI
// (clients create --login-ui) and so may not pass the second factor itself.
var ErrNotLoginUI = errors.New("the client is not a login UI")

// IssueOTP creates a challenge of req.Kind and queues its email in one
// transaction with the send-limit counters and the otp.issued audit event, so
// a code is never stored without its mail nor mailed without its row, and a
// refused or failed request counts nothing. The previous live challenge of the
// same session (login) or user (account) is burned: one live challenge per
// scope.
func (p *Provider) IssueOTP(ctx context.Context, req OTPRequest) (*IssuedOTP, error) {
	o, err := p.newOTP(ctx, req)
	if err != nil {
		return nil, err
	}
	if err := p.store.InTx(ctx, func(ctx context.Context) error { return p.storeOTP(ctx, o) }); err != nil {
		return nil, p.countRefusal(err)
	}
	p.notifyOutbox()
	p.metrics.CodeIssued(o.req.Kind, o.req.InResponse)
	return o.issued(), nil
}

// pendingOTP is a code drawn and its mail sealed, not yet stored.
type pendingOTP struct {
	req  OTPRequest
	now  time.Time
	code string
	ch   *storage.OTPChallenge
	msg  *storage.OutboxMessage
}

func (o *pendingOTP) issued() *IssuedOTP {
	return &IssuedOTP{ChallengeID: o.ch.ID, Code: o.code, ExpiresAt: o.ch.ExpiresAt, InResponse: o.req.InResponse}
}

// scope is what the resend interval counts per: the session of a login OTP,
// the user of an account OTP.
func (o *pendingOTP) scope() string {
	if o.req.Kind == OTPKindAccount || o.req.Kind == OTPKindRecovery {
		return o.req.User.ID
	}
	return o.req.SessionID
}

// newOTP draws a code and renders and seals its mail: all of issuing that
// needs no database, done before the transaction so it holds no lock meanwhile.
// The mail carries ctx's trace context, so its send joins the request's trace.
func (p *Provider) newOTP(ctx context.Context, req OTPRequest) (*pendingOTP, error) {
	if req.Kind == OTPKindAccount || req.Kind == OTPKindRecovery {
		req.SessionID = ""
	}
	// A recovery code proves the mailbox: it goes by mail only.
	if req.Kind == OTPKindRecovery {
		req.InResponse = false
	}
	// A login code in the response is as good as the second factor passed:
	// only a login UI, trusted to check it, may receive it.
	if req.Kind == OTPKindLogin && !req.LoginUI {
		req.InResponse = false
	}
	now := p.clock().UTC()
	code, err := newOTPCode(p.random, p.cfg.OTP.Length)
	if err != nil {
		return nil, err
	}
	ch := &storage.OTPChallenge{
		ID:          uuid.NewString(),
		Kind:        req.Kind,
		UserID:      req.User.ID,
		SessionID:   req.SessionID,
		ClientID:    req.ClientID,
		MaxAttempts: p.cfg.OTP.MaxAttempts,
		ExpiresAt:   now.Add(p.cfg.OTP.TTL),
		CreatedAt:   now,
	}
	ch.CodeHash = p.otpHash.hash(ch.ID, req.Kind, req.SessionID, req.User.ID, code)
	subject, text, html, err := p.mailTemplates.OTP(p.mailOTPData(ctx, req, code, ch.ExpiresAt))
	if err != nil {
		return nil, fmt.Errorf("otp mail template: %w", err)
	}
	msg := &storage.OutboxMessage{ID: uuid.NewString(), AvailableAt: now, CreatedAt: now}
	msg.Sealed, err = outbox.SealPayload(p.mailSealer, msg.ID, outbox.Payload{To: req.User.Email, Subject: subject, Text: text, HTML: html,
		Traceparent: outbox.Traceparent(ctx)})
	if err != nil {
		return nil, err
	}
	return &pendingOTP{req: req, now: now, code: code, ch: ch, msg: msg}, nil
}

// storeOTP is issuing's database part, inside the transaction in ctx: the send
// limits (sendLimits), the challenge (burning the previous one), its mail,
// and the otp.issued audit event with any further events of the same request.
func (p *Provider) storeOTP(ctx context.Context, o *pendingOTP, events ...*AuditEvent) error {
	limits := p.sendLimits(o)
	c := o.newChallenge(limits, append(events, o.issuedEvent()))
	return o.sendLimitError(limits, p.store.IssueChallenge(ctx, &c))
}

// newChallenge is what storage writes for o: the hits of limits, the
// challenge, its mail and events.
func (o *pendingOTP) newChallenge(limits []sendLimit, events []*AuditEvent) storage.NewChallenge {
	return storage.NewChallenge{Hits: limitHits(limits), Challenge: o.ch, Mail: o.msg, Events: events}
}

// countRefusal counts err in the refusals metric when it is a
// *TooManyAttemptsError, and returns it. The provider's entry points call it
// on what they answer, after their transaction, so a retried transaction
// counts once.
func (p *Provider) countRefusal(err error) error {
	var tm *TooManyAttemptsError
	if errors.As(err, &tm) {
		p.metrics.Refused(tm.Limit)
	}
	return err
}

// sendLimit is a counter an issued code hits, with the config key that sets
// its Max.
type sendLimit struct {
	hit       storage.RateHit
	configKey string
}

// sendLimits are the counters one issued code hits, in this order (two
// requests that lock the same counters then never deadlock):
//   - docs/api.md ("at most once per otp.resend_interval"): a counter per session
//     (login) or user (account) and kind whose window is the interval, Max 1;
//   - otp.max_sends_per_hour per user, across sessions and instances.
//
// Counted inside the issuing transaction, the rows stay locked until it ends,
// so parallel requests on several instances cannot both pass.
func (p *Provider) sendLimits(o *pendingOTP) []sendLimit {
	limits := make([]sendLimit, 0, 2)
	if p.cfg.OTP.ResendInterval > 0 {
		limits = append(limits, sendLimit{storage.RateHit{Key: "otp:resend:" + o.req.Kind + ":" + o.scope(),
			Window: p.cfg.OTP.ResendInterval, Max: 1}, "otp.resend_interval"})
	}
	return append(limits, sendLimit{storage.RateHit{Key: "otp:sends:" + o.req.User.ID,
		Window: time.Hour, Max: p.cfg.OTP.MaxSendsPerHour}, "otp.max_sends_per_hour"})
}

func limitHits(limits []sendLimit) []storage.RateHit {
	hits := make([]storage.RateHit, len(limits))
	for i, l := range limits {
		hits[i] = l.hit
	}
	return hits
}

// sendLimitError is err, the storage's answer to issuing o limited by
// limits (in order), with a refusal (storage.RateLimitedError: the hit past
// its Max, the one rule, applied by storage) named as *TooManyAttemptsError
// for the limit's config key; the hits were rolled back. Other errors and nil
// come back as they are.
func (o *pendingOTP) sendLimitError(limits []sendLimit, err error) error {
	var limited *storage.RateLimitedError
	if !errors.As(err, &limited) {
		return err
	}
	return &TooManyAttemptsError{Limit: limits[limited.Index].configKey,
		RetryAfter: limited.Counts[limited.Index].ResetAt.Sub(o.now), UserID: o.req.User.ID}
}

// issuedEvent is the otp.issued audit event of o.
func (o *pendingOTP) issuedEvent() *AuditEvent {
	return &AuditEvent{At: o.now, Type: AuditOTPIssued, UserID: o.req.User.ID, ClientID: o.req.ClientID,
		SessionID: o.req.SessionID, IP: o.req.IP,
		Detail: map[string]any{"kind": o.req.Kind, "challenge_id": o.ch.ID, "in_response": o.req.InResponse}}
}

// NeedsSecondFactor says whether an authorize request may only be answered
// once the login session passed the OTP: the client requires it
// (require_second_factor, default true) or the request asks for
// acr_values=aal2 (fosite does not enforce acr_values; this does).
func (p *Provider) NeedsSecondFactor(client *storage.Client, ar interface{ GetRequestForm() url.Values }) bool {
	if client.RequireSecondFactor {
		return true
	}
	return ParseAuthorizeParams(ar.GetRequestForm()).AsksSecondFactor()
}

// EnsureLoginOTP issues a login OTP for req's session unless a live,
// unexpired one exists (so reloading the OTP page does not send a new mail).
//
// A recovered session gets none: ErrRecoveredSession (recovery.go).
func (p *Provider) EnsureLoginOTP(ctx context.Context, req OTPRequest) error {
	req.Kind = OTPKindLogin
	ch, err := p.store.LiveOTPChallenge(ctx, OTPKindLogin, req.User.ID, req.SessionID)
	if err == nil && p.clock().Before(ch.ExpiresAt) {
		return nil
	}
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	ls, err := p.store.GetLoginSession(ctx, req.SessionID)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	if ls != nil && ls.Recovered {
		return ErrRecoveredSession
	}
	_, err = p.IssueOTP(ctx, req)
	return err
}
