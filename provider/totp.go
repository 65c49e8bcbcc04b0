package provider

import (
	"context"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/otpstep/otpstep/provider/metrics"
	"github.com/otpstep/otpstep/storage"
)

// TOTPs (RFC 6238) as second factors, of two kinds: a device TOTP, which
// PACE's CreateTOTP makes for a device (the app keeps the secret and sends
// its codes to VerifyOTP with types ["device-totp"]), and an authenticator
// TOTP, which a user enrolls in an authenticator app (BeginAuthenticatorTOTP,
// then ConfirmAuthenticatorTOTP with a first code) and types at sign-in or
// sends with types ["totp"]. Secrets are sealed at rest under their own
// purpose of secrets.system (SealPurposeTOTP); codes are generated and
// otpauth:// URIs written by github.com/pquerna/otp on the injected clock.
//
// The provider API for the pages and the CLI:
//   - CreateDeviceTOTP: a device's TOTP, replacing the device's earlier one.
//   - BeginAuthenticatorTOTP → NewTOTP (secret, otpauth URI for the QR code);
//     ConfirmAuthenticatorTOTP(id, first code) makes it usable.
//   - ListTOTPs, HasAuthenticatorTOTP, DeleteTOTP: what a user (or support
//     staff) sees and removes; no secret ever leaves again.
//   - VerifyOTP with OTPKindTOTP / OTPKindDeviceTOTP, and
//     PassLoginTOTPInBrowser for the sign-in page.

// SealPurposeTOTP is the purpose of the Sealer of TOTP secrets:
// NewSealer(secrets.system, SealPurposeTOTP). It depends on secrets.system
// only, so rotating the signing keys (otpstep keys rotate) leaves every TOTP
// readable.
const SealPurposeTOTP = "totp-secrets"

// The parameters of every TOTP otpstep makes: RFC 6238's defaults (30 s
// steps, HMAC-SHA-1) and 6 digits, which every authenticator app reads
// from an otpauth:// URI.
const (
	TOTPPeriod    = 30
	TOTPDigits    = 6
	TOTPAlgorithm = "SHA1"
	// totpSecretSize is 160 bits: RFC 4226 §4 R6 recommends a shared
	// secret of at least that length, the output length of HMAC-SHA-1.
	totpSecretSize = 20
	// totpSkew is how many time steps before and after now a code may be
	// of: RFC 6238 §5.2 recommends at most one step of network delay.
	totpSkew = 1
)

// Kinds of TOTP, as ListTOTPs reports them.
const (
	TOTPKindDevice        = storage.TOTPKindDevice
	TOTPKindAuthenticator = storage.TOTPKindAuthenticator
)

// ErrTOTPNotFound means the user has no TOTP of that id (another user's
// answers the same), or, confirming, none waiting for confirmation.
var ErrTOTPNotFound = errors.New("TOTP not found")

// NewTOTP is a TOTP just made: the only time its secret leaves otpstep.
type NewTOTP struct {
	ID        string // the credential (ConfirmAuthenticatorTOTP, DeleteTOTP)
	Kind      string // TOTPKindDevice or TOTPKindAuthenticator
	DeviceID  string // a device TOTP's device; "" for an authenticator
	Secret    string // base32 (RFC 4648), without padding
	Period    int    // seconds per step
	Digits    int
	Algorithm string // SHA1, SHA256 or SHA512
	// URI is the otpauth:// URI an authenticator app scans (issuer
	// ui.product_name, account the user's email), for the QR code.
	URI string
}

// TOTPInfo is what may be shown of a user's TOTP: never its secret.
type TOTPInfo struct {
	ID          string
	Kind        string // TOTPKindDevice or TOTPKindAuthenticator
	DeviceID    string // a device TOTP's device; "" for an authenticator
	Period      int
	Digits      int
	Algorithm   string
	Confirmed   bool      // false: an authenticator enrollment not confirmed yet (it verifies nothing)
	ConfirmedAt time.Time // zero when not confirmed
	CreatedAt   time.Time
	// LastUsedAt is the start of the time step of the last code accepted;
	// zero when none was.
	LastUsedAt time.Time
}

// CreateDeviceTOTP makes a device TOTP for user's device deviceID (PACE's
// CreateTOTP, after the web layer checked the credentials), replacing the
// device's earlier TOTP of that user if any. The secret is in the answer
// only. It is usable at once (VerifyOTP with OTPKindDeviceTOTP) and audited.
func (p *Provider) CreateDeviceTOTP(ctx context.Context, user *storage.User, deviceID string) (*NewTOTP, error) {
	if deviceID == "" {
		return nil, fmt.Errorf("%w: a device TOTP needs the device's id", ErrInvalidInput)
	}
	return p.createTOTP(ctx, user, TOTPKindDevice, deviceID)
}

// BeginAuthenticatorTOTP starts user's enrollment of an authenticator app:
// a new secret and its otpauth:// URI, stored unconfirmed (replacing an
// earlier unconfirmed one). It verifies nothing until
// ConfirmAuthenticatorTOTP accepts a first code of it. The caller must have
// made sure the user is signed in past the second factor.
func (p *Provider) BeginAuthenticatorTOTP(ctx context.Context, user *storage.User) (*NewTOTP, error) {
	return p.createTOTP(ctx, user, TOTPKindAuthenticator, "")
}

func (p *Provider) createTOTP(ctx context.Context, user *storage.User, kind, deviceID string) (*NewTOTP, error) {
	key, err := totp.Generate(totp.GenerateOpts{
		Issuer: p.totpIssuer(), AccountName: totpAccount(user),
		Period: TOTPPeriod, SecretSize: totpSecretSize, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1,
		Rand: p.random,
	})
	if err != nil {
		return nil, fmt.Errorf("provider: generate TOTP secret: %w", err)
	}
	c := &storage.TOTPCredential{ID: uuid.NewString(), UserID: user.ID, Kind: kind, DeviceID: deviceID,
		Period: TOTPPeriod, Digits: TOTPDigits, Algorithm: TOTPAlgorithm}
	if kind == TOTPKindDevice {
		c.ConfirmedAt = p.clock()
	}
	if c.Sealed, err = p.totpSealer.Seal([]byte(key.Secret()), totpAD(c)); err != nil {
		return nil, err
	}
	if err := p.store.CreateTOTPCredential(ctx, c); err != nil {
		return nil, err
	}
	if err := p.Audit(ctx, AuditEvent{Type: AuditTOTPCreated, UserID: user.ID,
		Detail: map[string]any{"kind": kind, "totp_id": c.ID, "device_id": deviceID}}); err != nil {
		return nil, err
	}
	return &NewTOTP{ID: c.ID, Kind: kind, DeviceID: c.DeviceID, Secret: key.Secret(), Period: c.Period,
		Digits: c.Digits, Algorithm: c.Algorithm, URI: key.URL()}, nil
}

// PendingAuthenticatorTOTP is user's authenticator enrollment waiting for
// its first code (BeginAuthenticatorTOTP), with its secret and otpauth://
// URI again, so that the enrollment page can show its QR code after a
// redirect (post/redirect/get) and on a reload without making a new secret
// the user may have scanned already. An unconfirmed secret verifies
// nothing. None waiting, or one that no longer opens, is ErrTOTPNotFound.
func (p *Provider) PendingAuthenticatorTOTP(ctx context.Context, user *storage.User) (*NewTOTP, error) {
	creds, err := p.store.ListTOTPCredentials(ctx, user.ID, TOTPKindAuthenticator)
	if err != nil {
		return nil, err
	}
	for i := len(creds) - 1; i >= 0; i-- { // the newest first
		c := &creds[i]
		if !c.ConfirmedAt.IsZero() {
			continue
		}
		secret, err := p.totpSealer.Open(c.Sealed, totpAD(c))
		if err != nil {
			p.log.ErrorContext(ctx, "totp enrollment unreadable", "totp_id", c.ID, "user_id", user.ID, "err", err)
			return nil, ErrTOTPNotFound
		}
		// Written as pquerna/otp writes it: RFC 4648 base32 without padding.
		raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(string(secret))
		if err != nil {
			return nil, fmt.Errorf("provider: TOTP %s: secret: %w", c.ID, err)
		}
		key, err := totp.Generate(totp.GenerateOpts{
			Issuer: p.totpIssuer(), AccountName: totpAccount(user),
			Period: uint(c.Period), Secret: raw, Digits: otp.Digits(c.Digits), Algorithm: otp.AlgorithmSHA1,
		})
		if err != nil {
			return nil, fmt.Errorf("provider: TOTP %s: otpauth URI: %w", c.ID, err)
		}
		return &NewTOTP{ID: c.ID, Kind: c.Kind, Secret: key.Secret(), Period: c.Period, Digits: c.Digits,
			Algorithm: c.Algorithm, URI: key.URL()}, nil
	}
	return nil, ErrTOTPNotFound
}

// totpAccount names the user in an authenticator app: the email, else the id.
func totpAccount(user *storage.User) string {
	if user.Email != "" {
		return user.Email
	}
	return user.ID
}

// totpIssuer names otpstep in an authenticator app: ui.product_name.
func (p *Provider) totpIssuer() string {
	if p.cfg.UI.ProductName != "" {
		return p.cfg.UI.ProductName
	}
	return "otpstep"
}

// totpAD binds a sealed secret to its credential: its id, user and kind,
// so a secret cannot be moved to another row or user.
func totpAD(c *storage.TOTPCredential) []byte {
	return []byte("totp\x00" + c.ID + "\x00" + c.UserID + "\x00" + c.Kind)
}

// ConfirmAuthenticatorTOTP completes the enrollment id of user with code, a
// code of its secret (±1 step): nil when it matched, and the authenticator
// then verifies (its step is used, so the same code does not also sign in).
// A wrong code is ErrOTPMismatch and counts in otp.max_failures_per_user
// like every verification (*TooManyAttemptsError past it); an id that is
// not the user's enrollment waiting for confirmation is ErrTOTPNotFound.
func (p *Provider) ConfirmAuthenticatorTOTP(ctx context.Context, user *storage.User, id, code string) error {
	var outcome error
	err := p.store.InTx(ctx, func(ctx context.Context) error {
		now := p.clock().UTC()
		failKey := otpFailureKey([]string{OTPKindTOTP}, user.ID)
		_, out, err := p.checkOTPFailures(ctx, failKey, user, "", now)
		if err != nil || out != nil {
			outcome = out
			return err
		}
		c, err := p.store.GetTOTPCredential(ctx, user.ID, id)
		if errors.Is(err, storage.ErrNotFound) || err == nil && (c.Kind != TOTPKindAuthenticator || !c.ConfirmedAt.IsZero()) {
			outcome = ErrTOTPNotFound
			return nil
		}
		if err != nil {
			return err
		}
		step, ok, err := p.matchTOTPCredential(c, now, code)
		if errors.Is(err, errTOTPUnreadable) {
			p.log.ErrorContext(ctx, "totp enrollment unreadable", "totp_id", c.ID, "user_id", user.ID, "err", err)
			outcome = ErrTOTPNotFound
			return nil
		}
		if err != nil {
			return err
		}
		if ok {
			err := p.store.ConfirmTOTPCredential(ctx, user.ID, id, step)
			if errors.Is(err, storage.ErrNotFound) { // confirmed or deleted meanwhile
				outcome = ErrTOTPNotFound
				return nil
			}
			if err != nil {
				return err
			}
			return p.writeAudit(ctx, &AuditEvent{Type: AuditTOTPConfirmed, UserID: user.ID,
				Detail: map[string]any{"kind": TOTPKindAuthenticator, "totp_id": id}})
		}
		outcome = ErrOTPMismatch
		if err := p.store.CountRateCounterHit(ctx, failKey); err != nil {
			return err
		}
		return p.writeAudit(ctx, &AuditEvent{Type: AuditOTPVerifyFailed, UserID: user.ID,
			Detail: map[string]any{"kinds": []string{OTPKindTOTP}, "method": "totp", "enrollment": id}})
	})
	if err != nil {
		return err
	}
	return p.countRefusal(outcome)
}

// ListTOTPs lists userID's TOTPs, oldest first, without their secrets.
func (p *Provider) ListTOTPs(ctx context.Context, userID string) ([]TOTPInfo, error) {
	creds, err := p.store.ListTOTPCredentials(ctx, userID, "")
	if err != nil {
		return nil, err
	}
	out := make([]TOTPInfo, 0, len(creds))
	for _, c := range creds {
		info := TOTPInfo{ID: c.ID, Kind: c.Kind, DeviceID: c.DeviceID, Period: c.Period, Digits: c.Digits,
			Algorithm: c.Algorithm, Confirmed: !c.ConfirmedAt.IsZero(), ConfirmedAt: c.ConfirmedAt, CreatedAt: c.CreatedAt}
		if c.LastUsedStep != nil && c.Period > 0 {
			info.LastUsedAt = time.Unix(*c.LastUsedStep*int64(c.Period), 0).UTC()
		}
		out = append(out, info)
	}
	return out, nil
}

// HasAuthenticatorTOTP reports whether userID has a confirmed authenticator
// TOTP (the sign-in page then offers it beside the emailed code).
func (p *Provider) HasAuthenticatorTOTP(ctx context.Context, userID string) (bool, error) {
	creds, err := p.store.ListTOTPCredentials(ctx, userID, TOTPKindAuthenticator)
	if err != nil {
		return false, err
	}
	for _, c := range creds {
		if !c.ConfirmedAt.IsZero() {
			return true, nil
		}
	}
	return false, nil
}

// DeleteTOTP removes userID's TOTP id (of either kind), audited; none of
// the user's → ErrTOTPNotFound. The caller decides who may: the user past
// the second factor, or support staff (otpstep totp delete).
func (p *Provider) DeleteTOTP(ctx context.Context, userID, id string) error {
	err := p.store.DeleteTOTPCredential(ctx, userID, id)
	if errors.Is(err, storage.ErrNotFound) {
		return ErrTOTPNotFound
	}
	if err != nil {
		return err
	}
	return p.Audit(ctx, AuditEvent{Type: AuditTOTPDeleted, UserID: userID, Detail: map[string]any{"totp_id": id}})
}

// verifyTOTPInTx checks code against user's TOTPs of kind (OTPKindTOTP:
// the confirmed authenticators; OTPKindDeviceTOTP: the devices), inside
// VerifyOTP's transaction. matched is the credential whose step the code
// used (nil: none); tried says whether the user had a TOTP of the kind to
// check, so that the try counts in otp.max_failures_per_user.
func (p *Provider) verifyTOTPInTx(ctx context.Context, kind string, user *storage.User, now time.Time, code string) (matched *storage.TOTPCredential, tried bool, err error) {
	storeKind := TOTPKindDevice
	if kind == OTPKindTOTP {
		storeKind = TOTPKindAuthenticator
	}
	creds, err := p.store.ListTOTPCredentials(ctx, user.ID, storeKind)
	if err != nil {
		return nil, false, err
	}
	for i := range creds {
		c := &creds[i]
		if c.ConfirmedAt.IsZero() { // an enrollment not confirmed verifies nothing
			continue
		}
		step, ok, err := p.matchTOTPCredential(c, now, code)
		if errors.Is(err, errTOTPUnreadable) {
			p.log.ErrorContext(ctx, "totp unreadable: secrets.system changed since it was made? the user must make it again", "totp_id", c.ID, "user_id", user.ID, "err", err)
			continue
		}
		if err != nil {
			return nil, false, err
		}
		tried = true
		if !ok {
			continue
		}
		// RFC 6238 §5.2: "the verifier MUST NOT accept the second attempt
		// of the same OTP after the successful validation has been issued
		// for the first OTP". The step is taken by one conditional UPDATE,
		// so a code is accepted once per step and credential, on any
		// instance; a code of an earlier step than one used is refused too.
		used, err := p.store.UseTOTPStep(ctx, c.ID, step)
		if err != nil {
			return nil, false, err
		}
		if !used {
			p.log.InfoContext(ctx, "totp code of a used step refused", "totp_id", c.ID, "user_id", user.ID, "step", step)
			continue
		}
		return c, true, nil
	}
	return nil, tried, nil
}

// errTOTPUnreadable is a stored TOTP that cannot be used: its secret does
// not open (secrets.system changed since it was sealed) or its parameters
// are unknown. It matches nothing and is logged; it never fails a
// verification of the user's other codes.
var errTOTPUnreadable = errors.New("TOTP unreadable")

// matchTOTPCredential opens c's secret and matches code against it at now:
// the time step the code is of, and whether it matched; errTOTPUnreadable
// when c cannot be used.
func (p *Provider) matchTOTPCredential(c *storage.TOTPCredential, now time.Time, code string) (int64, bool, error) {
	secret, err := p.totpSealer.Open(c.Sealed, totpAD(c))
	if err != nil {
		return 0, false, fmt.Errorf("%w: open TOTP secret %s: %w", errTOTPUnreadable, c.ID, err)
	}
	params, err := totpParamsOf(c)
	if err != nil {
		return 0, false, fmt.Errorf("%w: %w", errTOTPUnreadable, err)
	}
	normalized, wellFormed := normalizeOTP(code)
	if !wellFormed {
		return 0, false, nil
	}
	return matchTOTP(string(secret), params, now, normalized)
}

// totpParams are a TOTP's parameters as github.com/pquerna/otp takes them.
type totpParams struct {
	period uint
	opts   totp.ValidateOpts
}

func totpParamsOf(c *storage.TOTPCredential) (totpParams, error) {
	var alg otp.Algorithm
	switch c.Algorithm {
	case "SHA1":
		alg = otp.AlgorithmSHA1
	case "SHA256":
		alg = otp.AlgorithmSHA256
	case "SHA512":
		alg = otp.AlgorithmSHA512
	default:
		return totpParams{}, fmt.Errorf("provider: TOTP %s: unknown algorithm %q", c.ID, c.Algorithm)
	}
	if c.Period <= 0 || c.Digits <= 0 {
		return totpParams{}, fmt.Errorf("provider: TOTP %s: period %d, digits %d", c.ID, c.Period, c.Digits)
	}
	return totpParams{period: uint(c.Period), opts: totp.ValidateOpts{
		Period: uint(c.Period), Digits: otp.Digits(c.Digits), Algorithm: alg}}, nil
}

// totpCode is the code of secret (base32) for the time step holding t
// (RFC 6238 §4: T = floor((t - T0) / X), T0 = 0), by pquerna/otp.
func totpCode(secret string, params totpParams, t time.Time) (string, error) {
	code, err := totp.GenerateCodeCustom(secret, t, params.opts)
	if err != nil {
		return "", fmt.Errorf("provider: TOTP code: %w", err)
	}
	return code, nil
}

// matchTOTP finds the time step, of now's and totpSkew steps either side,
// whose code is code: RFC 6238 §5.2 allows for a step of network delay and
// clock drift, no more. Each candidate is compared in constant time.
func matchTOTP(secret string, params totpParams, now time.Time, code string) (step int64, ok bool, err error) {
	current := now.Unix() / int64(params.period)
	best := int64(0) // the offset of the match; now's step wins a tie
	for d := int64(-totpSkew); d <= totpSkew; d++ {
		want, err := totpCode(secret, params, now.Add(time.Duration(d*int64(params.period))*time.Second))
		if err != nil {
			return 0, false, err
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 && (!ok || abs64(d) < abs64(best)) {
			step, best, ok = current+d, d, true
		}
	}
	return step, ok, nil
}

func abs64(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}

// checkOTPFailures is otp.max_failures_per_user per otp.failure_window for
// the counter failKey, across sessions and instances: it comes first in a
// verification's transaction and keeps the counter row locked until commit,
// so one user's verifications run one at a time and a try is counted before
// the next is checked. outcome is the *TooManyAttemptsError past the limit
// (the first refusal is audited as a lock-out), nil to go on.
func (p *Provider) checkOTPFailures(ctx context.Context, failKey string, user *storage.User, sessionID string, now time.Time) (verdict string, outcome, err error) {
	n, resetAt, err := p.store.CheckRateCounter(ctx, failKey, p.cfg.OTP.FailureWindow, p.cfg.OTP.MaxFailuresPerUser)
	if err != nil {
		return "", nil, err
	}
	if n > p.cfg.OTP.MaxFailuresPerUser {
		if n == p.cfg.OTP.MaxFailuresPerUser+1 {
			if err := p.writeAudit(ctx, &AuditEvent{Type: AuditUserLockedOut, UserID: user.ID, SessionID: sessionID}); err != nil {
				return "", nil, err
			}
		}
		return metrics.VerifyLocked, &TooManyAttemptsError{Limit: "otp.max_failures_per_user", RetryAfter: resetAt.Sub(now), UserID: user.ID}, nil
	}
	return "", nil, nil
}

// passSessionByTOTP passes the second factor of user's login session
// sessionID after c accepted a code (amr gains "otp", RFC 8176 §2: a
// one-time password, which a TOTP is), burning its live emailed login code,
// inside the verification's transaction: rows in VerifyOTP's order, the
// challenge before the session. With no sessionID nothing is passed. A
// session otpstep does not hold (a host's, or one expired or ended) is
// ErrSessionNotFound when requireSession, else left alone (the code still
// verified); a recovered session stays at the first factor
// (ErrRecoveredSession), as with an emailed code.
func (p *Provider) passSessionByTOTP(ctx context.Context, user *storage.User, sessionID string, c *storage.TOTPCredential, requireSession bool) (outcome, err error) {
	if sessionID == "" {
		return nil, nil
	}
	if err := p.store.BurnOTPChallenges(ctx, OTPKindLogin, user.ID, sessionID); err != nil {
		return nil, err
	}
	err = p.store.PassLoginSession(ctx, sessionID, user.ID, AMROTP)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		if requireSession {
			return ErrSessionNotFound, nil
		}
		p.log.InfoContext(ctx, "totp verified for a login session otpstep does not hold", "totp_id", c.ID, "user_id", user.ID, "session_id", sessionID)
		return nil, nil
	case errors.Is(err, storage.ErrSessionRecovered):
		p.log.InfoContext(ctx, "totp matched for a recovered login session", "totp_id", c.ID, "user_id", user.ID)
		return ErrRecoveredSession, nil
	}
	return nil, err
}

// DeviceTOTPFreshAccountWindow is how long after an account's creation
// PACE's CreateTOTP may make a device TOTP without credentials (with the
// scope user:device-totps:create-after-login): "within 5 minutes of
// registration".
const DeviceTOTPFreshAccountWindow = 5 * time.Minute

// ErrDeviceTOTPUnauthorized means CreateTOTP's credentials were wrong, or
// missing outside DeviceTOTPFreshAccountWindow; it wraps the last cause.
var ErrDeviceTOTPUnauthorized = errors.New("credentials for a device TOTP are not valid")

// DeviceTOTPCredentials are what PACE's CreateTOTP may re-authenticate with;
// nil means not sent.
type DeviceTOTPCredentials struct {
	OTP      *string // a live account OTP (CreateOTP, SendmailOTP)
	Password *string
	PIN      *string
	IP       string // the caller's address, for the password's limits
	// FreshAccount allows no credentials at all within
	// DeviceTOTPFreshAccountWindow of the account's creation (the token
	// has user:device-totps:create-after-login).
	FreshAccount bool
}

// AuthorizeDeviceTOTP re-authenticates user for a new device TOTP, as
// PACE's CreateTOTP documents: "If multiple values are provided first the
// OTP is checked, then the password, then the PIN. In case one of the
// provided values is correct, a TOTP will be created." Each check counts in
// its own limit (the OTP in otp.max_failures_per_user, the password in the
// login limits, the PIN in its per-user limit); a limit reached is its
// *TooManyAttemptsError at once. None right, or none sent outside the fresh
// account window, is ErrDeviceTOTPUnauthorized.
func (p *Provider) AuthorizeDeviceTOTP(ctx context.Context, user *storage.User, creds DeviceTOTPCredentials) error {
	var wrong error
	check := func(err error) (done bool, _ error) {
		var tooMany *TooManyAttemptsError
		switch {
		case err == nil:
			return true, nil
		case errors.As(err, &tooMany):
			return true, err
		case errors.Is(err, ErrOTPMismatch), errors.Is(err, ErrInvalidCredentials):
			wrong = err
			return false, nil
		}
		return true, err
	}
	if creds.OTP != nil {
		_, err := p.VerifyOTP(ctx, []string{OTPKindAccount}, user, "", *creds.OTP)
		if done, err := check(err); done {
			return err
		}
	}
	if creds.Password != nil {
		_, err := p.Authenticate(ctx, user.Email, *creds.Password, creds.IP)
		if done, err := check(err); done {
			return err
		}
	}
	if creds.PIN != nil {
		if done, err := check(p.CheckPIN(ctx, user, *creds.PIN)); done {
			return err
		}
	}
	if wrong != nil {
		return fmt.Errorf("%w: %w", ErrDeviceTOTPUnauthorized, wrong)
	}
	if creds.FreshAccount && p.clock().Sub(user.CreatedAt) < DeviceTOTPFreshAccountWindow {
		return nil
	}
	return fmt.Errorf("%w: no credentials, and the account is older than %s or the scope does not allow it", ErrDeviceTOTPUnauthorized, DeviceTOTPFreshAccountWindow)
}
