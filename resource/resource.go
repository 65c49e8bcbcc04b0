// Package resource protects the routes of an OAuth 2.0 resource server with
// access tokens of an authorization server such as otpstep, and asks the
// client for a stronger or fresher login when a route needs one (RFC 9470,
// OAuth 2.0 Step Up Authentication Challenge).
//
// A Guard reads the bearer token of each request (RFC 6750 §2.1), asks the
// authorization server's introspection endpoint about it (RFC 7662) as a
// registered client, and checks it against the route's Require: the scopes,
// the authentication context class (acr) and how long ago the user logged in
// (auth_time). A token that falls short gets RFC 9470's challenge,
//
//	HTTP/1.1 401 Unauthorized
//	WWW-Authenticate: Bearer error="insufficient_user_authentication", error_description="A different authentication level is required", acr_values="aal2", max_age="300"
//
// which the client answers by sending the user to the authorization endpoint
// again with those acr_values and max_age; the token it gets then passes.
// The wrapped handler finds the introspection result with TokenFrom.
//
// The package depends on the standard library only and holds no
// package-level state: every Guard has its own HTTP client, clock and cache.
// It introspects opaque tokens; it does not verify JWT access tokens.
package resource

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Limits of the optional introspection cache (Config.CacheTTL).
const (
	// MaxCacheTTL is the longest a cached introspection result is used: a
	// revoked token is accepted at most this long after its revocation.
	MaxCacheTTL = time.Minute
	// DefaultCacheSize is the number of results kept when Config.CacheSize is 0.
	DefaultCacheSize = 1024
	// MaxCacheSize is the most results a cache keeps.
	MaxCacheSize = 100_000

	// defaultTimeout bounds an introspection call when Config.HTTPClient is nil.
	defaultTimeout = 10 * time.Second
	// maxResponseBytes bounds what is read of an introspection response.
	maxResponseBytes = 1 << 20
	// unavailableRetryAfter is the Retry-After, in seconds, of the 503 a
	// Guard answers when introspection gives no verdict (the same 5 s as
	// otpstep's own 503s; the package imports none of otpstep's).
	unavailableRetryAfter = 5
)

// ErrUnavailable means the introspection endpoint could not give a verdict
// (unreachable, an error status, a body that is not an RFC 7662 answer).
// A Guard answers 503 then, never 401: the token may well be good.
var ErrUnavailable = errors.New("resource: introspection unavailable")

// Config says where and how a Guard introspects.
type Config struct {
	// IntrospectionURL is the authorization server's introspection endpoint,
	// e.g. https://id.example.com/oauth2/introspect (otpstep advertises it as
	// introspection_endpoint in its discovery document). Required.
	IntrospectionURL string
	// ClientID and ClientSecret are the resource server's own client
	// credentials at the authorization server, sent with HTTP Basic
	// authentication (RFC 6749 §2.3.1). Required.
	ClientID     string
	ClientSecret string
	// HTTPClient makes the introspection calls; nil is a client with a
	// 10-second timeout.
	HTTPClient *http.Client
	// Clock is the time used for auth_time, exp and the cache; nil is time.Now.
	Clock func() time.Time
	// CacheTTL, when above zero, keeps active introspection results this
	// long (never past the token's exp, at most MaxCacheTTL), keyed by the
	// token's SHA-256. Inactive results and failures are never kept. 0 (the
	// default) asks the authorization server at every request.
	CacheTTL time.Duration
	// CacheSize is the most results kept (0: DefaultCacheSize, at most
	// MaxCacheSize). When full, expired results go first, then arbitrary ones.
	CacheSize int
	// Realm, when set, is sent as the realm of every challenge (RFC 6750 §3).
	Realm string
	// ACRSatisfies says whether a token's acr meets a route's Require.ACR;
	// nil is SatisfiesAAL.
	ACRSatisfies func(have, want string) bool
}

// Require is what a route asks of a token. The zero value asks only for an
// active token.
type Require struct {
	// Scopes the token must all have been granted (RFC 6749 §3.3); a token
	// without one gets 403 insufficient_scope (RFC 6750 §3.1).
	Scopes []string
	// ACR is the authentication context class the login must have reached,
	// e.g. "aal2" for otpstep's second factor. "" asks for none.
	ACR string
	// MaxAge is the longest time since the user logged in (auth_time).
	// 0 asks for no limit. It is sent in whole seconds, rounded down.
	MaxAge time.Duration
}

// Token is an introspection result (RFC 7662 §2.2, with RFC 9470 §6.2's
// acr, auth_time and amr).
type Token struct {
	Active    bool
	Scopes    []string
	ClientID  string
	Subject   string
	Username  string
	Audience  []string
	Issuer    string
	ExpiresAt time.Time // zero when the answer has no exp
	IssuedAt  time.Time // zero when the answer has no iat
	// ACR, AuthTime and AMR describe the user's login; they are empty for a
	// token without one (client credentials).
	ACR      string
	AuthTime time.Time
	AMR      []string
	// Raw is the whole answer, with any members not named above.
	Raw map[string]any
}

// HasScope says whether the token was granted scope.
func (t *Token) HasScope(scope string) bool { return slices.Contains(t.Scopes, scope) }

// Guard checks bearer tokens by introspection. It is safe for concurrent use.
type Guard struct {
	cfg    Config
	client *http.Client
	now    func() time.Time
	cache  *cache
}

// New checks cfg and returns its Guard.
func New(cfg Config) (*Guard, error) {
	u, err := url.Parse(cfg.IntrospectionURL)
	if err != nil || !u.IsAbs() || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("resource: Config.IntrospectionURL %q is not an absolute http(s) URL", cfg.IntrospectionURL)
	}
	if cfg.ClientID == "" {
		return nil, errors.New("resource: Config.ClientID is required")
	}
	if cfg.CacheTTL < 0 || cfg.CacheSize < 0 {
		return nil, errors.New("resource: Config.CacheTTL and Config.CacheSize may not be negative")
	}
	if strings.ContainsAny(cfg.Realm, "\"\\\r\n") {
		return nil, errors.New("resource: Config.Realm may not contain quotes, backslashes or line breaks")
	}
	g := &Guard{cfg: cfg, client: cfg.HTTPClient, now: cfg.Clock}
	if g.client == nil {
		g.client = &http.Client{Timeout: defaultTimeout}
	}
	if g.now == nil {
		g.now = time.Now
	}
	if g.cfg.ACRSatisfies == nil {
		g.cfg.ACRSatisfies = SatisfiesAAL
	}
	if cfg.CacheTTL > 0 {
		size := cfg.CacheSize
		if size == 0 {
			size = DefaultCacheSize
		}
		g.cache = newCache(min(cfg.CacheTTL, MaxCacheTTL), min(size, MaxCacheSize))
	}
	return g, nil
}

// SatisfiesAAL is the default Config.ACRSatisfies: the same value, or NIST
// SP 800-63B assurance levels "aal1" < "aal2" < "aal3" where have is at
// least want.
func SatisfiesAAL(have, want string) bool {
	if have == want {
		return true
	}
	h, hok := aalLevel(have)
	w, wok := aalLevel(want)
	return hok && wok && h >= w
}

func aalLevel(acr string) (int, bool) {
	if len(acr) != 4 || !strings.HasPrefix(acr, "aal") || acr[3] < '1' || acr[3] > '3' {
		return 0, false
	}
	return int(acr[3] - '0'), true
}

type tokenKey struct{}

// TokenFrom returns the token a Guard accepted for this request.
func TokenFrom(ctx context.Context) (*Token, bool) {
	t, ok := ctx.Value(tokenKey{}).(*Token)
	return t, ok
}

// Protect wraps next: a request reaches it only with an active bearer token
// that meets req, and TokenFrom(r.Context()) returns that token. Otherwise:
//
//	no bearer token                      401, WWW-Authenticate: Bearer (RFC 6750 §3.1: no error code)
//	a malformed Authorization header     400 error="invalid_request"
//	inactive, expired or unknown token   401 error="invalid_token"
//	a scope missing                      403 error="insufficient_scope", scope="…"
//	acr too weak or auth_time too old    401 error="insufficient_user_authentication", acr_values="…", max_age="…" (RFC 9470 §3)
//	introspection endpoint failed        503 with Retry-After, no verdict on the token
//
// Each refusal also has a JSON body {"error":…,"error_description":…}
// (without error when the request carried no token).
func (g *Guard) Protect(req Require, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, err := bearerToken(r)
		if errors.Is(err, errNoToken) {
			g.challenge(w, http.StatusUnauthorized, "", "", nil)
			return
		}
		if err != nil {
			g.challenge(w, http.StatusBadRequest, "invalid_request", err.Error(), nil)
			return
		}
		tok, err := g.Introspect(r.Context(), raw)
		if err != nil {
			w.Header().Set("Retry-After", strconv.Itoa(unavailableRetryAfter))
			writeError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "The token could not be checked; try again.")
			return
		}
		if !tok.Active {
			g.challenge(w, http.StatusUnauthorized, "invalid_token", "The access token is not active.", nil)
			return
		}
		if missing := missingScopes(tok, req.Scopes); len(missing) > 0 {
			g.challenge(w, http.StatusForbidden, "insufficient_scope", "The access token lacks a scope this resource needs.",
				[][2]string{{"scope", strings.Join(req.Scopes, " ")}})
			return
		}
		if desc := g.stepUpNeeded(tok, req); desc != "" {
			// RFC 9470 §3: name every requirement of the route, so the
			// token the client gets next meets all of them at once.
			var params [][2]string
			if req.ACR != "" {
				params = append(params, [2]string{"acr_values", req.ACR})
			}
			if req.MaxAge > 0 {
				params = append(params, [2]string{"max_age", strconv.FormatInt(int64(req.MaxAge/time.Second), 10)})
			}
			g.challenge(w, http.StatusUnauthorized, "insufficient_user_authentication", desc, params)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), tokenKey{}, tok)))
	})
}

// stepUpNeeded returns why the token's login falls short of req ("" when it
// does not): RFC 9470 §3's two reasons, the acr and the auth_time.
func (g *Guard) stepUpNeeded(tok *Token, req Require) string {
	if req.ACR != "" && (tok.ACR == "" || !g.cfg.ACRSatisfies(tok.ACR, req.ACR)) {
		return "A different authentication level is required."
	}
	if req.MaxAge > 0 {
		// A token without auth_time cannot show a recent login.
		if tok.AuthTime.IsZero() || g.now().Sub(tok.AuthTime) > req.MaxAge.Truncate(time.Second) {
			return "More recent authentication is required."
		}
	}
	return ""
}

func missingScopes(tok *Token, want []string) []string {
	var missing []string
	for _, s := range want {
		if !tok.HasScope(s) {
			missing = append(missing, s)
		}
	}
	return missing
}

var errNoToken = errors.New("no bearer token")

// bearerToken reads RFC 6750 §2.1's Authorization: Bearer header. A request
// with no Authorization header, or one of another scheme, has no token.
func bearerToken(r *http.Request) (string, error) {
	values := r.Header.Values("Authorization")
	if len(values) == 0 {
		return "", errNoToken
	}
	if len(values) > 1 {
		return "", errors.New("More than one Authorization header.")
	}
	scheme, token, _ := strings.Cut(values[0], " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", errNoToken
	}
	token = strings.TrimLeft(token, " ")
	// RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
	if token == "" || strings.TrimRight(token, "=") == "" || strings.IndexFunc(strings.TrimRight(token, "="), func(c rune) bool {
		return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-._~+/", c))
	}) >= 0 {
		return "", errors.New("The bearer token is malformed.")
	}
	return token, nil
}

// challenge answers with a Bearer challenge (RFC 6750 §3) carrying error,
// error_description and params, in that order, each a quoted-string.
func (g *Guard) challenge(w http.ResponseWriter, status int, code, desc string, params [][2]string) {
	var attrs [][2]string
	if g.cfg.Realm != "" {
		attrs = append(attrs, [2]string{"realm", g.cfg.Realm})
	}
	if code != "" {
		attrs = append(attrs, [2]string{"error", code}, [2]string{"error_description", desc})
	}
	attrs = append(attrs, params...)
	parts := make([]string, len(attrs))
	for i, a := range attrs {
		parts[i] = a[0] + `="` + quote(a[1]) + `"`
	}
	h := "Bearer"
	if len(parts) > 0 {
		h += " " + strings.Join(parts, ", ")
	}
	w.Header().Set("WWW-Authenticate", h)
	if code == "" {
		desc = "A bearer access token is required."
	}
	writeError(w, status, code, desc)
}

// quote escapes a quoted-string's content (RFC 9110 §5.6.4); the values
// here are the package's own texts and configured acr values.
func quote(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s)
}

func writeError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	body := map[string]string{"error_description": desc}
	if code != "" {
		body["error"] = code
	}
	_ = json.NewEncoder(w).Encode(body)
}

// Introspect asks the introspection endpoint about token (RFC 7662 §2.1),
// or answers from the cache. An answer that is active but past its exp by
// the Guard's clock is returned inactive. Any failure to get an answer
// wraps ErrUnavailable.
func (g *Guard) Introspect(ctx context.Context, token string) (*Token, error) {
	key := sha256.Sum256([]byte(token))
	now := g.now()
	if g.cache != nil {
		if t, ok := g.cache.get(key, now); ok {
			return t, nil
		}
	}
	t, err := g.introspect(ctx, token)
	if err != nil {
		return nil, err
	}
	if t.Active && !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt) {
		return &Token{Raw: map[string]any{"active": false}}, nil
	}
	if g.cache != nil && t.Active {
		g.cache.put(key, t, now)
	}
	return t, nil
}

func (g *Guard) introspect(ctx context.Context, token string) (*Token, error) {
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.cfg.IntrospectionURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	// RFC 6749 §2.3.1: the id and secret are form-encoded before Basic.
	req.SetBasicAuth(url.QueryEscape(g.cfg.ClientID), url.QueryEscape(g.cfg.ClientSecret))
	resp, err := g.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: reading the answer: %v", ErrUnavailable, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: status %d", ErrUnavailable, resp.StatusCode)
	}
	if len(body) > maxResponseBytes {
		return nil, fmt.Errorf("%w: answer larger than %d bytes", ErrUnavailable, maxResponseBytes)
	}
	return parseIntrospection(body)
}

// parseIntrospection reads an RFC 7662 §2.2 answer.
func parseIntrospection(body []byte) (*Token, error) {
	var raw map[string]any
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, fmt.Errorf("%w: answer is not a JSON object: %v", ErrUnavailable, err)
	}
	active, ok := raw["active"].(bool)
	if !ok {
		return nil, fmt.Errorf("%w: answer has no boolean active", ErrUnavailable)
	}
	t := &Token{Active: active, Raw: raw}
	if !active {
		return t, nil
	}
	str := func(name string) string { s, _ := raw[name].(string); return s }
	unix := func(name string) time.Time {
		if f, ok := raw[name].(float64); ok && f > 0 {
			return time.Unix(int64(f), 0)
		}
		return time.Time{}
	}
	strs := func(name string) []string {
		switch v := raw[name].(type) {
		case string:
			return []string{v}
		case []any:
			out := make([]string, 0, len(v))
			for _, e := range v {
				if s, ok := e.(string); ok {
					out = append(out, s)
				}
			}
			return out
		}
		return nil
	}
	t.Scopes = strings.Fields(str("scope"))
	t.ClientID, t.Subject, t.Username, t.Issuer = str("client_id"), str("sub"), str("username"), str("iss")
	t.Audience = strs("aud")
	t.ExpiresAt, t.IssuedAt = unix("exp"), unix("iat")
	t.ACR, t.AuthTime, t.AMR = str("acr"), unix("auth_time"), strs("amr")
	return t, nil
}

// cache keeps active introspection results by token hash for a short time.
type cache struct {
	mu      sync.Mutex
	ttl     time.Duration
	size    int
	entries map[[sha256.Size]byte]cacheEntry
}

type cacheEntry struct {
	token   *Token
	expires time.Time
}

func newCache(ttl time.Duration, size int) *cache {
	return &cache{ttl: ttl, size: size, entries: make(map[[sha256.Size]byte]cacheEntry)}
}

func (c *cache) get(key [sha256.Size]byte, now time.Time) (*Token, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok {
		return nil, false
	}
	if !now.Before(e.expires) {
		delete(c.entries, key)
		return nil, false
	}
	return e.token, true
}

func (c *cache) put(key [sha256.Size]byte, t *Token, now time.Time) {
	expires := now.Add(c.ttl)
	if !t.ExpiresAt.IsZero() && t.ExpiresAt.Before(expires) {
		expires = t.ExpiresAt
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[key]; !ok && len(c.entries) >= c.size {
		for k, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, k)
			}
		}
		for k := range c.entries {
			if len(c.entries) < c.size {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[key] = cacheEntry{token: t, expires: expires}
}

func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}
