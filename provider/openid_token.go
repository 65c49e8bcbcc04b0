package provider

import (
	"context"
	"slices"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/token/jwt"
)

// idTokenStrategy signs ID tokens (OIDC Core §2) on otpstep's clock: iat,
// exp and the checks against auth_time read the provider's Clock, so the
// ID token agrees with the login session it describes (fosite's
// openid.DefaultStrategy reads the machine's clock). Keys come from the
// KeySet through signer (the client's id_token_signed_response_alg in ctx).
type idTokenStrategy struct {
	signer   jwt.Signer
	issuer   string
	lifespan time.Duration
	clock    Clock
}

var _ openid.OpenIDConnectTokenStrategy = idTokenStrategy{}

// GenerateIDToken signs the ID token of requester's session. For a code
// exchange the authorize request's max_age still holds at the time it was
// answered (RequestedAt), and auth_time is not ahead of the clock; a
// refresh re-issues the login's claims as they are (OIDC Core §12.2).
// lifespan applies unless the claims carry an expiry.
func (s idTokenStrategy) GenerateIDToken(ctx context.Context, lifespan time.Duration, requester fosite.Requester) (string, error) {
	sess, ok := requester.GetSession().(openid.Session)
	if !ok {
		return "", fosite.ErrServerError.WithDebug("The session is not an OpenID Connect session.")
	}
	claims := sess.IDTokenClaims()
	if claims.Subject == "" {
		return "", fosite.ErrServerError.WithDebug("The ID token has no subject.")
	}
	if lifespan <= 0 {
		lifespan = s.lifespan
	}
	now := s.clock().UTC()
	form := requester.GetRequestForm()
	if form.Get("grant_type") != "refresh_token" {
		if claims.AuthTime.After(now.Add(authTimeSkew)) {
			return "", fosite.ErrServerError.WithDebugf("auth_time %s is ahead of the clock (%s).", claims.AuthTime, now)
		}
		if maxAge, ok := MaxAge(form); ok && claims.RequestedAt.Unix()-claims.AuthTime.Unix() > int64(maxAge/time.Second) {
			return "", fosite.ErrServerError.WithDebug("auth_time does not satisfy the request's max_age.")
		}
		if nonce := form.Get("nonce"); nonce != "" {
			claims.Nonce = nonce
		}
	}
	if claims.ExpiresAt.IsZero() {
		claims.ExpiresAt = now.Add(lifespan)
	}
	if !claims.ExpiresAt.After(now) {
		return "", fosite.ErrServerError.WithDebug("The ID token's expiry is not in the future.")
	}
	if claims.AuthTime.IsZero() {
		claims.AuthTime = now.Truncate(time.Second)
	}
	if claims.Issuer == "" {
		claims.Issuer = s.issuer
	}
	if id := requester.GetClient().GetID(); !slices.Contains(claims.Audience, id) {
		claims.Audience = append(claims.Audience, id)
	}
	claims.IssuedAt = now
	mc := claims.ToMapClaims()
	// fosite's "rat" (the request's time) is no claim of OIDC Core and not
	// in claims_supported: the ID token carries what discovery lists.
	delete(mc, "rat")
	token, _, err := s.signer.Generate(ctx, mc, sess.IDTokenHeaders())
	return token, err
}
