package upstream

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/go-jose/go-jose/v4"
)

// metadata is the part of the OpenID Provider Metadata otpstep uses
// (OpenID Connect Discovery 1.0 §3).
type metadata struct {
	Issuer                string `json:"issuer"`
	AuthorizationEndpoint string `json:"authorization_endpoint"`
	TokenEndpoint         string `json:"token_endpoint"`
	JWKSURI               string `json:"jwks_uri"`
}

// discovery returns the cached metadata, fetching it on first use. A failed
// fetch is not cached: the next call tries again.
func (p *Provider) discovery(ctx context.Context) (*metadata, error) {
	p.mu.Lock()
	m := p.meta
	p.mu.Unlock()
	if m != nil {
		return m, nil
	}
	p.fetchMu.Lock()
	defer p.fetchMu.Unlock()
	p.mu.Lock()
	m = p.meta
	p.mu.Unlock()
	if m != nil {
		return m, nil
	}
	u := strings.TrimSuffix(p.cfg.Issuer, "/") + "/.well-known/openid-configuration"
	var doc metadata
	if err := p.getJSON(ctx, u, &doc); err != nil {
		return nil, err
	}
	// Discovery §4.3: "The issuer value returned MUST be identical to the
	// Issuer URL that was used as the prefix to /.well-known/openid-configuration".
	if doc.Issuer != p.cfg.Issuer {
		p.log.ErrorContext(ctx, "upstream discovery names another issuer", "want", p.cfg.Issuer, "got", doc.Issuer)
		return nil, fmt.Errorf("%w: %s: discovery issuer %q is not the configured %q", ErrUnavailable, p.cfg.Name, doc.Issuer, p.cfg.Issuer)
	}
	for name, v := range map[string]string{
		"authorization_endpoint": doc.AuthorizationEndpoint,
		"token_endpoint":         doc.TokenEndpoint,
		"jwks_uri":               doc.JWKSURI,
	} {
		if eu, err := url.Parse(v); err != nil || !eu.IsAbs() || eu.Host == "" {
			return nil, fmt.Errorf("%w: %s: discovery %s %q is not an absolute URL", ErrUnavailable, p.cfg.Name, name, v)
		}
	}
	p.mu.Lock()
	p.meta = &doc
	p.mu.Unlock()
	return &doc, nil
}

// verificationKeys returns the keys that may have signed a token with this
// kid and alg. The JWKS is fetched on first use and again once older than
// KeysMaxAge. When no key matches, the JWKS is fetched once more, at most
// once per RefetchInterval, so a key rotated in upstream is picked up
// without a restart while a stream of made-up kids cannot make otpstep
// hammer the upstream.
func (p *Provider) verificationKeys(ctx context.Context, kid string, alg jose.SignatureAlgorithm) ([]jose.JSONWebKey, error) {
	p.mu.Lock()
	set, fetchedAt, gen := p.keys, p.keysFetchedAt, p.keysGen
	p.mu.Unlock()
	fresh := false
	if set == nil || p.opts.Clock().Sub(fetchedAt) >= p.opts.KeysMaxAge {
		var err error
		if set, gen, err = p.fetchKeys(ctx, gen); err != nil {
			return nil, err
		}
		fresh = true
	}
	if keys := matchKeys(set, kid, alg); len(keys) > 0 || fresh {
		return keys, nil
	}
	if !p.mayRefetch() {
		p.log.DebugContext(ctx, "upstream jwks refetch skipped (rate limit)", "kid", kid)
		return nil, nil
	}
	set, _, err := p.fetchKeys(ctx, gen)
	if err != nil {
		return nil, err
	}
	return matchKeys(set, kid, alg), nil
}

// mayRefetch takes the refetch slot when RefetchInterval has passed since
// the last unknown-kid refetch.
func (p *Provider) mayRefetch() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.opts.Clock()
	if !p.lastRefetch.IsZero() && now.Sub(p.lastRefetch) < p.opts.RefetchInterval {
		return false
	}
	p.lastRefetch = now
	return true
}

// fetchKeys fetches the JWKS, unless another caller replaced the set of
// generation seen while this one waited for the fetch lock: that newer set
// is used. It returns the set and its generation.
func (p *Provider) fetchKeys(ctx context.Context, seen uint64) (*jose.JSONWebKeySet, uint64, error) {
	m, err := p.discovery(ctx)
	if err != nil {
		return nil, 0, err
	}
	p.fetchMu.Lock()
	defer p.fetchMu.Unlock()
	p.mu.Lock()
	current, at, gen := p.keys, p.keysFetchedAt, p.keysGen
	p.mu.Unlock()
	if current != nil && gen != seen && p.opts.Clock().Sub(at) < p.opts.KeysMaxAge {
		return current, gen, nil
	}
	var set jose.JSONWebKeySet
	if err := p.getJSON(ctx, m.JWKSURI, &set); err != nil {
		return nil, 0, err
	}
	p.mu.Lock()
	p.keysGen++
	p.keys, p.keysFetchedAt, gen = &set, p.opts.Clock(), p.keysGen
	p.mu.Unlock()
	p.log.DebugContext(ctx, "upstream jwks fetched", "keys", len(set.Keys))
	return &set, gen, nil
}

// matchKeys picks the public signing keys of set that fit kid and alg: the
// same kid (any kid when the token names none), use "sig" or unset, alg
// unset or the token's, and a key type of alg's family. Symmetric keys are
// never used.
func matchKeys(set *jose.JSONWebKeySet, kid string, alg jose.SignatureAlgorithm) []jose.JSONWebKey {
	var out []jose.JSONWebKey
	for _, k := range set.Keys {
		if kid != "" && k.KeyID != kid {
			continue
		}
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		if k.Algorithm != "" && k.Algorithm != string(alg) {
			continue
		}
		if !k.Valid() {
			continue
		}
		if !k.IsPublic() {
			k = k.Public()
		}
		if !keyFits(k.Key, alg) {
			continue
		}
		out = append(out, k)
	}
	return out
}

func keyFits(key any, alg jose.SignatureAlgorithm) bool {
	switch alg {
	case jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512:
		_, ok := key.(*rsa.PublicKey)
		return ok
	case jose.ES256, jose.ES384, jose.ES512:
		_, ok := key.(*ecdsa.PublicKey)
		return ok
	case jose.EdDSA:
		_, ok := key.(ed25519.PublicKey)
		return ok
	}
	return false
}

// getJSON GETs u and decodes at most maxDocumentBytes of JSON into dst; any
// failure is ErrUnavailable.
func (p *Provider) getJSON(ctx context.Context, u string, dst any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrUnavailable, p.cfg.Name, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := p.opts.HTTPClient.Do(req)
	if err != nil {
		p.log.WarnContext(ctx, "upstream unreachable", "url", u, "err", err)
		return fmt.Errorf("%w: %s: %v", ErrUnavailable, p.cfg.Name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDocumentBytes))
		p.log.WarnContext(ctx, "upstream answered an error", "url", u, "status", resp.StatusCode)
		return fmt.Errorf("%w: %s: GET %s: status %d", ErrUnavailable, p.cfg.Name, u, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocumentBytes+1))
	if err != nil {
		return fmt.Errorf("%w: %s: GET %s: %v", ErrUnavailable, p.cfg.Name, u, err)
	}
	if len(body) > maxDocumentBytes {
		return fmt.Errorf("%w: %s: GET %s: document larger than %d bytes", ErrUnavailable, p.cfg.Name, u, maxDocumentBytes)
	}
	if err := json.Unmarshal(body, dst); err != nil {
		p.log.WarnContext(ctx, "upstream answered malformed JSON", "url", u, "err", err)
		return fmt.Errorf("%w: %s: GET %s: %v", ErrUnavailable, p.cfg.Name, u, err)
	}
	return nil
}
