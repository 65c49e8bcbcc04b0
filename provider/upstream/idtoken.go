package upstream

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Reason names why an ID token was refused. Each is logged distinctly; the
// client only ever learns that the token is not valid.
type Reason string

// The reasons an ID token is refused, in the order the checks run.
const (
	ReasonMalformed      Reason = "malformed"
	ReasonAlgorithm      Reason = "alg-not-allowed"
	ReasonUnknownKey     Reason = "unknown-kid"
	ReasonSignature      Reason = "bad-signature"
	ReasonIssuer         Reason = "wrong-issuer"
	ReasonAudience       Reason = "wrong-audience"
	ReasonAuthorized     Reason = "wrong-azp"
	ReasonSubject        Reason = "missing-sub"
	ReasonMissingTime    Reason = "missing-exp-or-iat"
	ReasonExpired        Reason = "expired"
	ReasonNotYetValid    Reason = "not-yet-valid"
	ReasonIssuedInFuture Reason = "issued-in-future"
	ReasonTooOld         Reason = "too-old"
	ReasonNonce          Reason = "nonce-mismatch"
	// ReasonReplayed is a token that passed every check but was accepted
	// before; the provider records accepted tokens (see Claims.ReplayKey).
	ReasonReplayed Reason = "replayed"
)

// TokenError is an ID token that failed a check. It matches
// ErrInvalidIDToken with errors.Is.
type TokenError struct {
	Upstream string
	Reason   Reason
	Err      error // the underlying parse or verification error, if any
}

func (e *TokenError) Error() string {
	s := fmt.Sprintf("upstream %s: id token refused: %s", e.Upstream, e.Reason)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Is makes errors.Is(err, ErrInvalidIDToken) true.
func (e *TokenError) Is(target error) bool { return target == ErrInvalidIDToken }

// Unwrap returns the underlying error.
func (e *TokenError) Unwrap() error { return e.Err }

// Claims are the verified claims of an upstream ID token otpstep uses.
type Claims struct {
	Issuer   string
	Subject  string
	Audience []string
	// Email is the upstream's email claim; informational, never used to
	// match a local user.
	Email         string
	EmailVerified bool
	Nonce         string
	// JTI is the token's jti claim, "" when it has none.
	JTI      string
	IssuedAt time.Time
	Expiry   time.Time
}

// AcceptedUntil is when VerifyIDToken stops accepting a token with these
// claims: its exp or its iat plus the IDTokenMaxAge, whichever comes first,
// plus the clock skew. A record of the token kept until then is enough to
// refuse its replay.
func (p *Provider) AcceptedUntil(c *Claims) time.Time {
	until := c.Expiry
	if byAge := c.IssuedAt.Add(p.opts.IDTokenMaxAge); byAge.Before(until) {
		until = byAge
	}
	return until.Add(p.opts.Leeway)
}

// Refuse is the *TokenError of a token that passed VerifyIDToken but is
// refused for reason all the same (ReasonReplayed).
func (p *Provider) Refuse(reason Reason, err error) error {
	return &TokenError{Upstream: p.cfg.Name, Reason: reason, Err: err}
}

// idTokenClaims is an ID token's payload (OpenID Connect Core §2).
type idTokenClaims struct {
	jwt.Claims
	Nonce           string `json:"nonce"`
	AuthorizedParty string `json:"azp"`
	Email           string `json:"email"`
	EmailVerified   any    `json:"email_verified"` // a bool, or "true" at some providers
}

// maxSubjectLength is OpenID Connect Core §2's limit on sub.
const maxSubjectLength = 255

// VerifyIDToken checks an ID token from this upstream (OpenID Connect Core
// §3.1.3.7) and returns its claims. nonce is the value otpstep sent when it
// started the flow; "" skips the nonce check (an ID token handed to the API
// by a client). A refused token is a *TokenError (its reason is logged);
// an upstream that cannot be reached for its keys is ErrUnavailable.
func (p *Provider) VerifyIDToken(ctx context.Context, raw, nonce string) (*Claims, error) {
	refuse := func(reason Reason, err error) (*Claims, error) {
		attrs := []any{"reason", string(reason)}
		if err != nil {
			attrs = append(attrs, "err", err)
		}
		p.log.WarnContext(ctx, "upstream id token refused", attrs...)
		return nil, &TokenError{Upstream: p.cfg.Name, Reason: reason, Err: err}
	}
	alg, kid, err := peekHeader(raw)
	if err != nil {
		return refuse(ReasonMalformed, err)
	}
	// RFC 8725 §3.1: only the algorithms on the allow-list; never "none",
	// never HMAC (whose "key" would be our copy of the public key).
	if !slices.Contains(allowedAlgorithms, alg) {
		return refuse(ReasonAlgorithm, fmt.Errorf("alg %q", alg))
	}
	tok, err := jwt.ParseSigned(raw, allowedAlgorithms)
	if err != nil {
		return refuse(ReasonMalformed, err)
	}
	keys, err := p.verificationKeys(ctx, kid, alg)
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return refuse(ReasonUnknownKey, fmt.Errorf("kid %q alg %s", kid, alg))
	}
	// OIDC Core §3.1.3.7 step 6: validate the signature with the key the
	// issuer published.
	var claims idTokenClaims
	var sigErr error
	verified := false
	for _, k := range keys {
		claims = idTokenClaims{}
		if sigErr = tok.Claims(k.Key, &claims); sigErr == nil {
			verified = true
			break
		}
	}
	if !verified {
		return refuse(ReasonSignature, sigErr)
	}
	// Step 2: iss MUST exactly match the issuer.
	if claims.Issuer != p.cfg.Issuer {
		return refuse(ReasonIssuer, fmt.Errorf("iss %q", claims.Issuer))
	}
	// Step 3: aud MUST contain our client_id.
	if !claims.Audience.Contains(p.cfg.ClientID) {
		return refuse(ReasonAudience, fmt.Errorf("aud %v", []string(claims.Audience)))
	}
	// Steps 4-5: "If the ID Token contains multiple audiences, the Client
	// SHOULD verify that an azp Claim is present", and an azp, when present,
	// must be our client_id. Without azp a token for several audiences may
	// have been obtained by any of them and handed on.
	if len(claims.Audience) > 1 && claims.AuthorizedParty == "" {
		return refuse(ReasonAuthorized, fmt.Errorf("aud %v without azp", []string(claims.Audience)))
	}
	if claims.AuthorizedParty != "" && claims.AuthorizedParty != p.cfg.ClientID {
		return refuse(ReasonAuthorized, fmt.Errorf("azp %q", claims.AuthorizedParty))
	}
	if claims.Subject == "" || len(claims.Subject) > maxSubjectLength {
		return refuse(ReasonSubject, fmt.Errorf("sub of %d bytes", len(claims.Subject)))
	}
	// Core §2: exp and iat are REQUIRED. Steps 9-10 with a small skew.
	if claims.Expiry == nil || claims.IssuedAt == nil {
		return refuse(ReasonMissingTime, nil)
	}
	now, leeway := p.opts.Clock(), p.opts.Leeway
	if now.Add(-leeway).After(claims.Expiry.Time()) {
		return refuse(ReasonExpired, fmt.Errorf("exp %s, now %s", claims.Expiry.Time().UTC(), now.UTC()))
	}
	if claims.NotBefore != nil && now.Add(leeway).Before(claims.NotBefore.Time()) {
		return refuse(ReasonNotYetValid, fmt.Errorf("nbf %s, now %s", claims.NotBefore.Time().UTC(), now.UTC()))
	}
	if now.Add(leeway).Before(claims.IssuedAt.Time()) {
		return refuse(ReasonIssuedInFuture, fmt.Errorf("iat %s, now %s", claims.IssuedAt.Time().UTC(), now.UTC()))
	}
	// Core §3.1.3.7 step 10: "The iat Claim can be used to reject tokens
	// that were issued too far away from the current time, limiting the
	// amount of time that nonces need to be stored to prevent attacks." A
	// token handed to the API carries no nonce of ours, so this bound is
	// what keeps an old token that leaked, but has not expired, from
	// linking.
	if now.Add(-leeway).Sub(claims.IssuedAt.Time()) > p.opts.IDTokenMaxAge {
		return refuse(ReasonTooOld, fmt.Errorf("iat %s, now %s, max age %s", claims.IssuedAt.Time().UTC(), now.UTC(), p.opts.IDTokenMaxAge))
	}
	// Step 11: the nonce sent in the authentication request.
	if nonce != "" && subtle.ConstantTimeCompare([]byte(claims.Nonce), []byte(nonce)) != 1 {
		return refuse(ReasonNonce, nil)
	}
	return &Claims{
		Issuer:        claims.Issuer,
		Subject:       claims.Subject,
		Audience:      []string(claims.Audience),
		Email:         claims.Email,
		EmailVerified: claims.EmailVerified == true || claims.EmailVerified == "true",
		Nonce:         claims.Nonce,
		JTI:           claims.ID,
		IssuedAt:      claims.IssuedAt.Time(),
		Expiry:        claims.Expiry.Time(),
	}, nil
}

// peekHeader reads alg and kid from a compact JWS's protected header before
// it is parsed, so a disallowed alg is told apart from a malformed token.
func peekHeader(raw string) (jose.SignatureAlgorithm, string, error) {
	if len(raw) > 16<<10 {
		return "", "", errors.New("token longer than 16 KiB")
	}
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return "", "", fmt.Errorf("%d parts, want 3 (JWS compact)", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return "", "", fmt.Errorf("header: %w", err)
	}
	var h struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(b, &h); err != nil {
		return "", "", fmt.Errorf("header: %w", err)
	}
	return jose.SignatureAlgorithm(h.Alg), h.Kid, nil
}
