package provider

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/mail"
	"slices"
	"time"

	"github.com/ory/fosite"

	"github.com/otpstep/otpstep/provider/metrics"
	"github.com/otpstep/otpstep/provider/upstream"
	"github.com/otpstep/otpstep/storage"
)

// The linking rules: who may link which upstream subject to which user, and
// who may sign in with one. Linking never matches users by email.

// Errors of linking; the web layer maps them in one place.
var (
	// ErrUnknownUpstream means no upstream of that name is configured (or,
	// for sign-in, it does not allow_login).
	ErrUnknownUpstream = errors.New("unknown upstream identity provider")
	// ErrIdentityAlreadyLinked means the upstream subject belongs to another user.
	ErrIdentityAlreadyLinked = errors.New("upstream identity already linked to another user")
	// ErrIdentityNotLinked means there is no such link: the user has none at
	// the upstream, or (sign-in) no user has the upstream subject.
	ErrIdentityNotLinked = errors.New("upstream identity not linked")
	// ErrUserNotFound means the user to link does not exist or is disabled.
	ErrUserNotFound = errors.New("user not found")
	// ErrUpstreamStateUsed means a browser flow's state was already redeemed.
	ErrUpstreamStateUsed = errors.New("upstream flow state already used")
	// ErrNoSessionUpstream means a body-less link asked for the upstream
	// identity of a login session that did not sign in with that upstream.
	ErrNoSessionUpstream = errors.New("login session did not sign in with the upstream")
)

// Who made a link, as the audit trail records it.
const (
	LinkByAPI     = "api"     // the user's own access token, with an upstream ID token
	LinkByBrowser = "browser" // the browser flow through the upstream
	LinkByPartner = "partner" // a partner's client-credentials token
	LinkByCLI     = "cli"     // an operator, with otpstep identities link|unlink
)

// LinkRequest is one attempt to link or unlink, with who asked for it.
type LinkRequest struct {
	UserID   string
	Upstream string
	Subject  string
	Email    string // informational, from the upstream
	By       string // LinkByAPI, LinkByBrowser, LinkByPartner or LinkByCLI
	// ClientID, SessionID and IP are recorded in the audit trail.
	ClientID  string
	SessionID string
	IP        string
}

func (lr LinkRequest) audit(typ string, detail map[string]any) AuditEvent {
	d := map[string]any{"provider": lr.Upstream, "by": lr.By}
	if lr.Subject != "" {
		d["subject"] = lr.Subject
	}
	for k, v := range detail {
		d[k] = v
	}
	return AuditEvent{Type: typ, UserID: lr.UserID, ClientID: lr.ClientID, SessionID: lr.SessionID, IP: lr.IP, Detail: d}
}

// Upstreams is the registry of configured upstream providers.
func (p *Provider) Upstreams() *upstream.Registry { return p.upstreams }

// Upstream returns the configured upstream name, or ErrUnknownUpstream.
func (p *Provider) Upstream(name string) (*upstream.Provider, error) {
	up, ok := p.upstreams.Lookup(name)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownUpstream, name)
	}
	return up, nil
}

// LinkWithIDToken verifies an ID token of the upstream lr.Upstream (with
// nonce when otpstep started the flow, "" otherwise) and links its subject to
// lr.UserID. A refused token is recorded in the audit trail with its reason
// and returned as an error matching upstream.ErrInvalidIDToken.
func (p *Provider) LinkWithIDToken(ctx context.Context, lr LinkRequest, rawIDToken, nonce string) (*storage.LinkedIdentity, error) {
	up, err := p.Upstream(lr.Upstream)
	if err != nil {
		return nil, err
	}
	claims, err := p.verifyIDTokenOnce(ctx, up, rawIDToken, nonce)
	if err != nil {
		var te *upstream.TokenError
		if errors.As(err, &te) {
			_ = p.Audit(ctx, lr.audit(AuditIdentityLinkRefused, map[string]any{"reason": string(te.Reason)}))
			p.metrics.Identity(metrics.IdentityRefused)
		}
		return nil, err
	}
	lr.Subject = claims.Subject
	lr.Email = displayEmail(claims.Email)
	return p.LinkIdentity(ctx, lr)
}

// LinkIdentity links lr.Subject at lr.Upstream to lr.UserID. The user's
// earlier link at that upstream, if any, is replaced; linking the same
// subject again is idempotent. The subject linked to another user is
// ErrIdentityAlreadyLinked (and an audit event); an unknown or disabled user
// ErrUserNotFound; an unconfigured upstream ErrUnknownUpstream.
func (p *Provider) LinkIdentity(ctx context.Context, lr LinkRequest) (*storage.LinkedIdentity, error) {
	if _, err := p.Upstream(lr.Upstream); err != nil {
		return nil, err
	}
	if lr.Subject == "" {
		return nil, fmt.Errorf("%w: empty subject", ErrInvalidInput)
	}
	u, err := p.store.GetUser(ctx, lr.UserID)
	if errors.Is(err, storage.ErrNotFound) || err == nil && u.Disabled {
		return nil, fmt.Errorf("%w: %s", ErrUserNotFound, lr.UserID)
	}
	if err != nil {
		return nil, err
	}
	li := &storage.LinkedIdentity{UserID: lr.UserID, Provider: lr.Upstream, Subject: lr.Subject, Email: displayEmail(lr.Email)}
	err = p.store.UpsertLinkedIdentity(ctx, li)
	switch {
	case errors.Is(err, storage.ErrAlreadyExists):
		_ = p.Audit(ctx, lr.audit(AuditIdentityLinkRefused, map[string]any{"reason": "linked-to-another-user"}))
		p.metrics.Identity(metrics.IdentityRefused)
		return nil, fmt.Errorf("%w: %s at %s", ErrIdentityAlreadyLinked, lr.Subject, lr.Upstream)
	case errors.Is(err, storage.ErrNotFound):
		return nil, fmt.Errorf("%w: %s", ErrUserNotFound, lr.UserID)
	case err != nil:
		return nil, err
	}
	_ = p.Audit(ctx, lr.audit(AuditIdentityLinked, map[string]any{"link_id": li.ID}))
	p.metrics.Identity(metrics.IdentityLinked)
	return li, nil
}

// UnlinkIdentity removes lr.UserID's link at lr.Upstream: ErrUnknownUpstream
// when the upstream is not configured, ErrIdentityNotLinked when there is no
// link, ErrUserNotFound when the user does not exist.
func (p *Provider) UnlinkIdentity(ctx context.Context, lr LinkRequest) error {
	if _, err := p.Upstream(lr.Upstream); err != nil {
		return err
	}
	if _, err := p.store.GetUser(ctx, lr.UserID); errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("%w: %s", ErrUserNotFound, lr.UserID)
	} else if err != nil {
		return err
	}
	err := p.store.DeleteLinkedIdentity(ctx, lr.UserID, lr.Upstream)
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("%w: %s has none at %s", ErrIdentityNotLinked, lr.UserID, lr.Upstream)
	}
	if err != nil {
		return err
	}
	_ = p.Audit(ctx, lr.audit(AuditIdentityUnlinked, nil))
	p.metrics.Identity(metrics.IdentityUnlinked)
	return nil
}

// LinkedIdentities lists a user's links, oldest first.
func (p *Provider) LinkedIdentities(ctx context.Context, userID string) ([]storage.LinkedIdentity, error) {
	lis, err := p.store.ListLinkedIdentities(ctx, userID)
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(lis, func(a, b storage.LinkedIdentity) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return lis, nil
}

// FederatedLogin is the first factor of a sign-in with an upstream that
// allows it: the ID token is verified (with the nonce otpstep sent), and the
// user is the one whose link holds its subject. An unlinked subject is
// ErrIdentityNotLinked whatever its email: a local account is never found by
// email. Every refusal is recorded in the audit trail with its reason. The
// upstream identity signed in with is returned for RecordSessionUpstream
// (its SessionID left empty: the session starts after this).
func (p *Provider) FederatedLogin(ctx context.Context, upstreamName, rawIDToken, nonce, ip string) (*storage.User, *storage.SessionUpstream, error) {
	up, err := p.Upstream(upstreamName)
	if err != nil {
		return nil, nil, err
	}
	if !up.AllowLogin() {
		return nil, nil, fmt.Errorf("%w: %q does not allow sign-in", ErrUnknownUpstream, upstreamName)
	}
	audit := func(subject, reason string) {
		d := map[string]any{"provider": upstreamName, "reason": reason}
		if subject != "" {
			d["subject"] = subject
		}
		_ = p.Audit(ctx, AuditEvent{Type: AuditFederatedLoginRefused, IP: ip, Detail: d})
	}
	claims, err := p.verifyIDTokenOnce(ctx, up, rawIDToken, nonce)
	if err != nil {
		var te *upstream.TokenError
		if errors.As(err, &te) {
			audit("", string(te.Reason))
		}
		return nil, nil, err
	}
	li, err := p.store.GetLinkedIdentityBySubject(ctx, upstreamName, claims.Subject)
	if errors.Is(err, storage.ErrNotFound) {
		audit(claims.Subject, "not-linked")
		return nil, nil, fmt.Errorf("%w: %s at %s", ErrIdentityNotLinked, claims.Subject, upstreamName)
	}
	if err != nil {
		return nil, nil, err
	}
	u, err := p.store.GetUser(ctx, li.UserID)
	if errors.Is(err, storage.ErrNotFound) || err == nil && u.Disabled {
		audit(claims.Subject, "user-disabled")
		return nil, nil, fmt.Errorf("%w: %s at %s: user disabled", ErrIdentityNotLinked, claims.Subject, upstreamName)
	}
	if err != nil {
		return nil, nil, err
	}
	return u, &storage.SessionUpstream{Provider: upstreamName, Subject: claims.Subject, Email: displayEmail(claims.Email)}, nil
}

// RecordSessionUpstream keeps, with the login session su.SessionID, the
// upstream identity it signed in with (FederatedLogin's), so that
// LinkSessionUpstream can link it again later; gone with the session.
func (p *Provider) RecordSessionUpstream(ctx context.Context, su *storage.SessionUpstream) error {
	return p.store.SetSessionUpstream(ctx, su)
}

// LinkSessionUpstream is PACE's body-less SetFederatedIdentity: it links,
// as LinkIdentity does, the upstream identity the login session
// lr.SessionID signed in with (RecordSessionUpstream) to lr.UserID. A
// session that did not sign in with lr.Upstream, or not with an upstream at
// all, is ErrNoSessionUpstream. The caller has checked that the session is
// lr.UserID's (LinkSessionReadyByID).
func (p *Provider) LinkSessionUpstream(ctx context.Context, lr LinkRequest) (*storage.LinkedIdentity, error) {
	if _, err := p.Upstream(lr.Upstream); err != nil {
		return nil, err
	}
	su, err := p.store.GetSessionUpstream(ctx, lr.SessionID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("%w: session %s", ErrNoSessionUpstream, lr.SessionID)
	}
	if err != nil {
		return nil, err
	}
	if su.Provider != lr.Upstream {
		return nil, fmt.Errorf("%w: session %s signed in with %q, not %q", ErrNoSessionUpstream, lr.SessionID, su.Provider, lr.Upstream)
	}
	lr.Subject, lr.Email = su.Subject, su.Email
	return p.LinkIdentity(ctx, lr)
}

// verifyIDTokenOnce is up.VerifyIDToken, then the token is accepted once:
// it is recorded, in the database every instance shares, until VerifyIDToken
// would refuse it anyway (upstream.Provider.AcceptedUntil), and a second
// presentation is refused with upstream.ReasonReplayed. A token is known by
// its issuer and jti (RFC 7519 §4.1.7: a jti is unique per issuer), or by a
// hash of the whole token when it has no jti. It shares the replay table
// of client assertion JTIs, as ConsumeUpstreamState does, under its own
// prefix; the purge deletes what expired.
func (p *Provider) verifyIDTokenOnce(ctx context.Context, up *upstream.Provider, raw, nonce string) (*upstream.Claims, error) {
	claims, err := up.VerifyIDToken(ctx, raw, nonce)
	if err != nil {
		return nil, err
	}
	id := "raw\x00" + raw
	if claims.JTI != "" {
		id = "jti\x00" + claims.Issuer + "\x00" + claims.JTI
	}
	sum := sha256.Sum256([]byte(up.Name() + "\x00" + id))
	err = p.store.SetClientAssertionJWT(ctx, "upstream-id-token:"+hex.EncodeToString(sum[:]), up.AcceptedUntil(claims))
	if errors.Is(err, fosite.ErrJTIKnown) {
		return nil, up.Refuse(upstream.ReasonReplayed, fmt.Errorf("sub %q, jti %q: accepted before", claims.Subject, claims.JTI))
	}
	if err != nil {
		return nil, err
	}
	return claims, nil
}

// ConsumeUpstreamState marks a browser flow's state as used until expiresAt,
// in the database so every instance sees it: a second use (a replayed
// callback) is ErrUpstreamStateUsed. It shares the replay table of client
// assertion JTIs (RFC 7523 §3), under its own prefix and a hash of the state.
func (p *Provider) ConsumeUpstreamState(ctx context.Context, state string, expiresAt time.Time) error {
	sum := sha256.Sum256([]byte(state))
	err := p.store.SetClientAssertionJWT(ctx, "upstream-state:"+hex.EncodeToString(sum[:]), expiresAt)
	if errors.Is(err, fosite.ErrJTIKnown) {
		return ErrUpstreamStateUsed
	}
	return err
}

// displayEmail keeps an upstream email only when it is a plain address; it
// is shown, never used to find anyone.
func displayEmail(s string) string {
	if s == "" || len(s) > 254 {
		return ""
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s {
		return ""
	}
	return s
}
