package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/otpstep/otpstep/provider/upstream"
	"github.com/otpstep/otpstep/storage"
)

// Partner tokens (GrantFederatedToken): the upstream's own tokens for a
// linked user, kept from the code exchange of the browser's link flow and of
// a sign-in with the upstream, sealed at rest, and refreshed with the
// upstream's refresh token when they expire.

// ErrNoFederatedToken means there is no upstream token to hand out for the
// user's link: none was kept (the link was made with an ID token alone, or
// by a partner or operator), the link is gone, or the upstream refused to
// refresh it (the kept tokens are dropped then).
var ErrNoFederatedToken = errors.New("no upstream token kept for this link")

// SealPurposeFederatedTokens is the purpose of the Sealer the kept upstream
// tokens are sealed with: a key of their own from secrets.system, so
// rotating the signing keys (otpstep keys rotate) leaves them readable.
const SealPurposeFederatedTokens = "federated-tokens"

const (
	// federatedTokenMinLifetime: an access token with less left than this is
	// refreshed before it is handed out, so it does not expire on the way.
	federatedTokenMinLifetime = 30 * time.Second
	// federatedRefreshLease bounds how long one refresh holds the lease of
	// a link's tokens; it outlasts the upstream HTTP client's timeout, so a
	// refresh in progress is not taken over. A holder that died frees the
	// tokens when it passes.
	federatedRefreshLease = 30 * time.Second
	// federatedRefreshPoll is how often a request waiting for another's
	// refresh looks again.
	federatedRefreshPoll = 50 * time.Millisecond
)

// FederatedToken is an upstream's token as GrantFederatedToken hands it out
// (RFC 6749 §5.1).
type FederatedToken struct {
	AccessToken  string
	TokenType    string
	RefreshToken string
	Scope        string
	// ExpiresIn is the access token's lifetime left (0: the upstream named none).
	ExpiresIn time.Duration
}

// keptTokens is the sealed payload of a storage.FederatedToken.
type keptTokens struct {
	AccessToken  string `json:"at"`
	TokenType    string `json:"tt"`
	RefreshToken string `json:"rt,omitempty"`
	Scope        string `json:"sc,omitempty"`
	ExpiresAt    int64  `json:"exp,omitempty"` // unix seconds; 0: no lifetime named
}

// federatedTokenAD binds sealed tokens to the link they belong to, so a
// sealed value moved to another row (or kept past a relink to another
// upstream account) does not open.
func federatedTokenAD(userID, provider, subject string) []byte {
	return []byte("federated-token\x00" + userID + "\x00" + provider + "\x00" + subject)
}

func (p *Provider) sealTokens(userID, provider, subject string, t *upstream.Tokens) ([]byte, error) {
	k := keptTokens{AccessToken: t.AccessToken, TokenType: t.TokenType, RefreshToken: t.RefreshToken, Scope: t.Scope}
	if t.ExpiresIn > 0 {
		k.ExpiresAt = p.clock().Add(t.ExpiresIn).Unix()
	}
	plain, err := json.Marshal(k)
	if err != nil {
		return nil, err
	}
	return p.tokenSealer.Seal(plain, federatedTokenAD(userID, provider, subject))
}

// KeepFederatedTokens keeps what upstreamName issued in a code exchange
// (link or sign-in) as the tokens of userID's link there, replacing earlier
// ones. An answer without an access token keeps nothing. The link must
// exist: it is the one the caller has just made or signed in with
// (ErrIdentityNotLinked otherwise).
func (p *Provider) KeepFederatedTokens(ctx context.Context, userID, upstreamName string, t *upstream.Tokens) error {
	if t == nil || t.AccessToken == "" {
		return nil
	}
	lis, err := p.store.ListLinkedIdentities(ctx, userID)
	if err != nil {
		return err
	}
	subject := ""
	for _, li := range lis {
		if li.Provider == upstreamName {
			subject = li.Subject
		}
	}
	if subject == "" {
		return fmt.Errorf("%w: %s has none at %s", ErrIdentityNotLinked, userID, upstreamName)
	}
	sealed, err := p.sealTokens(userID, upstreamName, subject, t)
	if err != nil {
		return err
	}
	err = p.store.PutFederatedToken(ctx, &storage.FederatedToken{UserID: userID, Provider: upstreamName, Subject: subject, Sealed: sealed})
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("%w: %s at %s changed meanwhile", ErrIdentityNotLinked, userID, upstreamName)
	}
	return err
}

// GrantFederatedToken hands out the upstream's access token for lr.UserID's
// link at lr.Upstream, as a list of steps:
//
//  1. the upstream is configured, else ErrUnknownUpstream;
//  2. tokens are kept for the link (for its current subject), else
//     ErrNoFederatedToken;
//  3. an access token with at least federatedTokenMinLifetime left is
//     handed out as it is;
//  4. otherwise it is refreshed (RFC 6749 §6) by one request at a time per
//     link across every instance (the lease in the database: a rotating
//     refresh token is redeemed once, so the lease holder reads the tokens
//     again under it and refreshes only what is still expired); the others
//     wait and hand out what it stored. An expired token without a refresh
//     token, or one the upstream refuses to refresh, is dropped:
//     ErrNoFederatedToken. An unreachable upstream is
//     upstream.ErrUnavailable and keeps the tokens.
//
// Every grant is recorded in the audit trail, and so is a refused refresh.
func (p *Provider) GrantFederatedToken(ctx context.Context, lr LinkRequest) (*FederatedToken, error) {
	up, err := p.Upstream(lr.Upstream)
	if err != nil {
		return nil, err
	}
	leaseID, err := randomToken(p.random, 16)
	if err != nil {
		return nil, err
	}
	// holding: this request has taken the refresh lease. The tokens read
	// before taking it may be older than the lease — another request can
	// refresh them and end its lease between that read and the take — so
	// they are read again under the lease, and a refresh token already
	// redeemed (the upstream revokes the grant when one is redeemed twice)
	// is never sent again.
	holding := false
	release := func() {
		if !holding {
			return
		}
		if err := p.store.ReleaseFederatedTokenRefresh(context.WithoutCancel(ctx), lr.UserID, lr.Upstream, leaseID); err != nil {
			p.log.ErrorContext(ctx, "refresh lease not released", "user_id", lr.UserID, "upstream", lr.Upstream, "err", err)
		}
	}
	for waited := time.Duration(0); ; {
		ft, k, err := p.keptTokens(ctx, lr)
		if err != nil {
			release()
			return nil, err
		}
		lr.Subject = ft.Subject
		now := p.clock()
		if k.ExpiresAt == 0 || now.Add(federatedTokenMinLifetime).Before(time.Unix(k.ExpiresAt, 0)) {
			// Fresh: as kept, or refreshed by another before this one took
			// the lease (which it then gives back).
			release()
			return p.granted(ctx, lr, k, now, false), nil
		}
		if k.RefreshToken == "" {
			p.dropTokens(ctx, lr, "expired-without-refresh-token")
			return nil, fmt.Errorf("%w: the access token expired and there is no refresh token", ErrNoFederatedToken)
		}
		if holding {
			return p.refreshTokens(ctx, up, lr, leaseID, k)
		}
		held, err := p.store.LeaseFederatedTokenRefresh(ctx, lr.UserID, lr.Upstream, leaseID, now.Add(federatedRefreshLease))
		if errors.Is(err, storage.ErrNotFound) {
			return nil, fmt.Errorf("%w: %v", ErrNoFederatedToken, err)
		}
		if err != nil {
			return nil, err
		}
		if held {
			holding = true
			continue // read the tokens again, under the lease
		}
		// Another request refreshes these tokens: wait for what it stores.
		if waited >= federatedRefreshLease {
			return nil, fmt.Errorf("%w: %s: a refresh of %s's tokens is still in progress", upstream.ErrUnavailable, lr.Upstream, lr.UserID)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(federatedRefreshPoll):
		}
		waited += federatedRefreshPoll
	}
}

// keptTokens reads and opens the tokens of lr's link. Tokens that do not
// open (sealed under another secrets.system) are dropped: ErrNoFederatedToken.
func (p *Provider) keptTokens(ctx context.Context, lr LinkRequest) (*storage.FederatedToken, *keptTokens, error) {
	ft, err := p.store.GetFederatedToken(ctx, lr.UserID, lr.Upstream)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil, fmt.Errorf("%w: %v", ErrNoFederatedToken, err)
	}
	if err != nil {
		return nil, nil, err
	}
	plain, err := p.tokenSealer.Open(ft.Sealed, federatedTokenAD(ft.UserID, ft.Provider, ft.Subject))
	var k keptTokens
	if err == nil {
		err = json.Unmarshal(plain, &k)
	}
	if err != nil {
		p.log.ErrorContext(ctx, "kept upstream tokens do not open; dropped", "user_id", lr.UserID, "upstream", lr.Upstream, "err", err)
		lr.Subject = ft.Subject
		p.dropTokens(ctx, lr, "unreadable")
		return nil, nil, fmt.Errorf("%w: %v", ErrNoFederatedToken, err)
	}
	return ft, &k, nil
}

// refreshTokens redeems k's refresh token while holding the lease leaseID
// and stores the answer. The request's cancellation does not reach it: a
// refresh the upstream has answered (and whose old refresh token it may
// have revoked) is stored even if the caller went away; the upstream HTTP
// client's timeout and database.query_timeout bound it.
func (p *Provider) refreshTokens(ctx context.Context, up *upstream.Provider, lr LinkRequest, leaseID string, k *keptTokens) (*FederatedToken, error) {
	ctx = context.WithoutCancel(ctx)
	t, err := up.Refresh(ctx, k.RefreshToken)
	if errors.Is(err, upstream.ErrRefreshRejected) {
		p.dropTokens(ctx, lr, "refresh-rejected")
		return nil, fmt.Errorf("%w: %v", ErrNoFederatedToken, err)
	}
	if err != nil {
		if rerr := p.store.ReleaseFederatedTokenRefresh(ctx, lr.UserID, lr.Upstream, leaseID); rerr != nil {
			p.log.ErrorContext(ctx, "refresh lease not released", "user_id", lr.UserID, "upstream", lr.Upstream, "err", rerr)
		}
		return nil, err
	}
	sealed, err := p.sealTokens(lr.UserID, lr.Upstream, lr.Subject, t)
	if err != nil {
		return nil, err
	}
	err = p.store.CompleteFederatedTokenRefresh(ctx, lr.UserID, lr.Upstream, leaseID, sealed)
	if errors.Is(err, storage.ErrNotFound) {
		// Unlinked meanwhile (or the lease outlived): nothing to hand out.
		return nil, fmt.Errorf("%w: %v", ErrNoFederatedToken, err)
	}
	if err != nil {
		return nil, err
	}
	now := p.clock()
	nk := &keptTokens{AccessToken: t.AccessToken, TokenType: t.TokenType, RefreshToken: t.RefreshToken, Scope: t.Scope}
	if t.ExpiresIn > 0 {
		nk.ExpiresAt = now.Add(t.ExpiresIn).Unix()
	}
	return p.granted(ctx, lr, nk, now, true), nil
}

// granted records the grant and answers k.
func (p *Provider) granted(ctx context.Context, lr LinkRequest, k *keptTokens, now time.Time, refreshed bool) *FederatedToken {
	_ = p.Audit(ctx, lr.audit(AuditFederatedTokenGranted, map[string]any{"refreshed": refreshed}))
	out := &FederatedToken{AccessToken: k.AccessToken, TokenType: k.TokenType, RefreshToken: k.RefreshToken, Scope: k.Scope}
	if k.ExpiresAt != 0 {
		out.ExpiresIn = time.Unix(k.ExpiresAt, 0).Sub(now).Truncate(time.Second)
	}
	return out
}

// dropTokens deletes lr's kept tokens and records why.
func (p *Provider) dropTokens(ctx context.Context, lr LinkRequest, reason string) {
	if err := p.store.DeleteFederatedToken(ctx, lr.UserID, lr.Upstream); err != nil && !errors.Is(err, storage.ErrNotFound) {
		p.log.ErrorContext(ctx, "kept upstream tokens not dropped", "user_id", lr.UserID, "upstream", lr.Upstream, "err", err)
	}
	_ = p.Audit(ctx, lr.audit(AuditFederatedTokenDropped, map[string]any{"reason": reason}))
}
