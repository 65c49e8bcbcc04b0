package upstream

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/otpstep/otpstep/provider/config"
)

const testClientID = "otpstep-client"

// fakeUpstream serves discovery and a JWKS that a test can rotate, counting
// the JWKS fetches.
type fakeUpstream struct {
	srv        *httptest.Server
	mu         sync.Mutex
	keys       []jose.JSONWebKey
	issuer     string // the issuer discovery announces; "" is the server URL
	jwksHits   atomic.Int32
	discovered atomic.Int32
	down       atomic.Bool // answer 502 to everything
}

func newFakeUpstream(t *testing.T, keys ...jose.JSONWebKey) *fakeUpstream {
	t.Helper()
	f := &fakeUpstream{keys: keys}
	mux := http.NewServeMux()
	gate := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if f.down.Load() {
				http.Error(w, "down", http.StatusBadGateway)
				return
			}
			h(w, r)
		}
	}
	mux.HandleFunc("/.well-known/openid-configuration", gate(func(w http.ResponseWriter, r *http.Request) {
		f.discovered.Add(1)
		f.mu.Lock()
		iss := f.issuer
		f.mu.Unlock()
		if iss == "" {
			iss = f.srv.URL
		}
		_ = json.NewEncoder(w).Encode(map[string]string{
			"issuer":                 iss,
			"authorization_endpoint": f.srv.URL + "/authorize",
			"token_endpoint":         f.srv.URL + "/token",
			"jwks_uri":               f.srv.URL + "/jwks",
		})
	}))
	mux.HandleFunc("/jwks", gate(func(w http.ResponseWriter, r *http.Request) {
		f.jwksHits.Add(1)
		f.mu.Lock()
		set := jose.JSONWebKeySet{}
		for _, k := range f.keys {
			set.Keys = append(set.Keys, k.Public())
		}
		f.mu.Unlock()
		_ = json.NewEncoder(w).Encode(set)
	}))
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeUpstream) setKeys(keys ...jose.JSONWebKey) {
	f.mu.Lock()
	f.keys = keys
	f.mu.Unlock()
}

// testClock is a settable clock.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newTestProvider(t *testing.T, f *fakeUpstream, clock *testClock) *Provider {
	t.Helper()
	reg := NewRegistry([]config.Upstream{{Name: "partner", Issuer: f.srv.URL, ClientID: testClientID}},
		Options{HTTPClient: f.srv.Client(), Clock: clock.Now})
	p, ok := reg.Lookup("partner")
	if !ok {
		t.Fatal("partner not in the registry")
	}
	return p
}

func rsaKey(t *testing.T, kid string) jose.JSONWebKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return jose.JSONWebKey{Key: k, KeyID: kid, Use: "sig"}
}

func ecKey(t *testing.T, kid string) jose.JSONWebKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return jose.JSONWebKey{Key: k, KeyID: kid, Use: "sig"}
}

// sign makes a compact JWS of claims with key under alg, kid from the key.
func sign(t *testing.T, key jose.JSONWebKey, alg jose.SignatureAlgorithm, claims any) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

type testClaims struct {
	Issuer    string           `json:"iss,omitempty"`
	Subject   string           `json:"sub,omitempty"`
	Audience  jwt.Audience     `json:"aud,omitempty"`
	Azp       string           `json:"azp,omitempty"`
	Expiry    *jwt.NumericDate `json:"exp,omitempty"`
	NotBefore *jwt.NumericDate `json:"nbf,omitempty"`
	IssuedAt  *jwt.NumericDate `json:"iat,omitempty"`
	Nonce     string           `json:"nonce,omitempty"`
	Email     string           `json:"email,omitempty"`
	JTI       string           `json:"jti,omitempty"`
}

func TestVerifyIDToken_Checks(t *testing.T) {
	k1 := rsaKey(t, "k1")
	ec := ecKey(t, "ec1")
	other := rsaKey(t, "k1") // same kid, another key: a forged signature
	f := newFakeUpstream(t, k1, ec)
	clock := &testClock{now: time.Unix(1_800_000_000, 0)}
	now := clock.Now()
	valid := func() testClaims {
		return testClaims{
			Issuer: f.srv.URL, Subject: "up-123", Audience: jwt.Audience{testClientID},
			Expiry: jwt.NewNumericDate(now.Add(5 * time.Minute)), IssuedAt: jwt.NewNumericDate(now.Add(-time.Minute)),
			Nonce: "n-0123456789", Email: "alice@partner.example",
		}
	}
	with := func(mod func(*testClaims)) testClaims {
		c := valid()
		mod(&c)
		return c
	}
	pub, err := x509.MarshalPKIXPublicKey(&k1.Key.(*rsa.PrivateKey).PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	hmacWithPublicKey := sign(t, jose.JSONWebKey{Key: pub, KeyID: "k1"}, jose.HS256, valid())
	payload, _ := json.Marshal(valid())
	algNone := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","kid":"k1"}`)) + "." +
		base64.RawURLEncoding.EncodeToString(payload) + "."

	tests := []struct {
		name   string
		raw    string
		nonce  string
		reason Reason // "" means accepted
	}{
		{"valid RS256", sign(t, k1, jose.RS256, valid()), "n-0123456789", ""},
		{"valid ES256", sign(t, ec, jose.ES256, valid()), "n-0123456789", ""},
		{"valid PS256", sign(t, k1, jose.PS256, valid()), "", ""},
		{"no nonce expected", sign(t, k1, jose.RS256, valid()), "", ""},
		{"expired within the skew", sign(t, k1, jose.RS256, with(func(c *testClaims) { c.Expiry = jwt.NewNumericDate(now.Add(-30 * time.Second)) })), "", ""},
		{"iat ahead within the skew", sign(t, k1, jose.RS256, with(func(c *testClaims) { c.IssuedAt = jwt.NewNumericDate(now.Add(30 * time.Second)) })), "", ""},
		{"azp is our client", sign(t, k1, jose.RS256, with(func(c *testClaims) { c.Azp = testClientID })), "", ""},
		{"two audiences, azp is our client", sign(t, k1, jose.RS256, with(func(c *testClaims) {
			c.Audience, c.Azp = jwt.Audience{testClientID, "someone-else"}, testClientID
		})), "", ""},
		{"iat at the max age, within the skew", sign(t, k1, jose.RS256, with(func(c *testClaims) {
			c.IssuedAt = jwt.NewNumericDate(now.Add(-DefaultIDTokenMaxAge - DefaultLeeway + time.Second))
		})), "", ""},

		{"malformed", "not.a-jwt", "", ReasonMalformed},
		{"two parts", "abc.def", "", ReasonMalformed},
		{"alg none", algNone, "", ReasonAlgorithm},
		{"HS256 signed with the public key", hmacWithPublicKey, "", ReasonAlgorithm},
		{"unknown kid", sign(t, rsaKey(t, "k-unknown"), jose.RS256, valid()), "", ReasonUnknownKey},
		{"alg of another key family", sign(t, jose.JSONWebKey{Key: ec.Key, KeyID: "k1"}, jose.ES256, valid()), "", ReasonUnknownKey},
		{"bad signature", sign(t, other, jose.RS256, valid()), "", ReasonSignature},
		{"wrong issuer", sign(t, k1, jose.RS256, with(func(c *testClaims) { c.Issuer = "https://evil.example" })), "", ReasonIssuer},
		{"wrong audience", sign(t, k1, jose.RS256, with(func(c *testClaims) { c.Audience = jwt.Audience{"another-client"} })), "", ReasonAudience},
		{"azp of another client", sign(t, k1, jose.RS256, with(func(c *testClaims) { c.Azp = "someone-else" })), "", ReasonAuthorized},
		// OIDC Core §3.1.3.7 step 4: several audiences need an azp.
		{"two audiences without azp", sign(t, k1, jose.RS256, with(func(c *testClaims) { c.Audience = jwt.Audience{testClientID, "someone-else"} })), "", ReasonAuthorized},
		{"two audiences, azp of the other", sign(t, k1, jose.RS256, with(func(c *testClaims) {
			c.Audience, c.Azp = jwt.Audience{testClientID, "someone-else"}, "someone-else"
		})), "", ReasonAuthorized},
		{"no sub", sign(t, k1, jose.RS256, with(func(c *testClaims) { c.Subject = "" })), "", ReasonSubject},
		{"no exp", sign(t, k1, jose.RS256, with(func(c *testClaims) { c.Expiry = nil })), "", ReasonMissingTime},
		{"no iat", sign(t, k1, jose.RS256, with(func(c *testClaims) { c.IssuedAt = nil })), "", ReasonMissingTime},
		{"expired", sign(t, k1, jose.RS256, with(func(c *testClaims) { c.Expiry = jwt.NewNumericDate(now.Add(-2 * time.Minute)) })), "", ReasonExpired},
		{"not yet valid", sign(t, k1, jose.RS256, with(func(c *testClaims) { c.NotBefore = jwt.NewNumericDate(now.Add(5 * time.Minute)) })), "", ReasonNotYetValid},
		{"iat in the future", sign(t, k1, jose.RS256, with(func(c *testClaims) { c.IssuedAt = jwt.NewNumericDate(now.Add(2 * time.Minute)) })), "", ReasonIssuedInFuture},
		{"iat older than the max age and the skew", sign(t, k1, jose.RS256, with(func(c *testClaims) {
			c.IssuedAt = jwt.NewNumericDate(now.Add(-DefaultIDTokenMaxAge - DefaultLeeway - time.Second))
		})), "", ReasonTooOld},
		{"nonce mismatch", sign(t, k1, jose.RS256, valid()), "n-other", ReasonNonce},
		{"nonce missing from the token", sign(t, k1, jose.RS256, with(func(c *testClaims) { c.Nonce = "" })), "n-0123456789", ReasonNonce},
	}
	p := newTestProvider(t, f, clock)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			claims, err := p.VerifyIDToken(context.Background(), tt.raw, tt.nonce)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if claims.Subject != "up-123" || claims.Issuer != f.srv.URL || claims.Email != "alice@partner.example" {
					t.Fatalf("claims %+v", claims)
				}
				return
			}
			var te *TokenError
			if !errors.As(err, &te) || te.Reason != tt.reason || !errors.Is(err, ErrInvalidIDToken) || claims != nil {
				t.Fatalf("err = %v, want reason %s", err, tt.reason)
			}
		})
	}
}

func TestVerifyIDToken_KeyRotationRefetchesOncePerInterval(t *testing.T) {
	old, rotated, later := rsaKey(t, "old"), ecKey(t, "rotated"), ecKey(t, "later")
	f := newFakeUpstream(t, old)
	clock := &testClock{now: time.Unix(1_800_000_000, 0)}
	p := newTestProvider(t, f, clock)
	if f.discovered.Load() != 0 || f.jwksHits.Load() != 0 {
		t.Fatal("the registry fetched before first use")
	}
	claims := func() testClaims {
		now := clock.Now()
		return testClaims{Issuer: f.srv.URL, Subject: "s", Audience: jwt.Audience{testClientID},
			Expiry: jwt.NewNumericDate(now.Add(time.Hour)), IssuedAt: jwt.NewNumericDate(now)}
	}
	verify := func(key jose.JSONWebKey, alg jose.SignatureAlgorithm) error {
		_, err := p.VerifyIDToken(context.Background(), sign(t, key, alg, claims()), "")
		return err
	}
	if err := verify(old, jose.RS256); err != nil {
		t.Fatalf("old key: %v", err)
	}
	if got := f.jwksHits.Load(); got != 1 {
		t.Fatalf("jwks fetched %d times, want 1", got)
	}
	if err := verify(old, jose.RS256); err != nil || f.jwksHits.Load() != 1 {
		t.Fatalf("cached key: %v, %d fetches", err, f.jwksHits.Load())
	}

	// The upstream rotates: the unknown kid triggers one refetch.
	f.setKeys(old, rotated)
	if err := verify(rotated, jose.ES256); err != nil {
		t.Fatalf("rotated key: %v", err)
	}
	if got := f.jwksHits.Load(); got != 2 {
		t.Fatalf("jwks fetched %d times after rotation, want 2", got)
	}

	// Another unknown kid within the interval: no refetch, refused.
	f.setKeys(old, rotated, later)
	clock.Advance(DefaultRefetchInterval / 2)
	var te *TokenError
	if err := verify(later, jose.ES256); !errors.As(err, &te) || te.Reason != ReasonUnknownKey {
		t.Fatalf("second unknown kid within the interval: %v", err)
	}
	if got := f.jwksHits.Load(); got != 2 {
		t.Fatalf("jwks fetched %d times, want still 2 (rate limit)", got)
	}

	// Once the interval has passed, the next unknown kid refetches again.
	clock.Advance(DefaultRefetchInterval)
	if err := verify(later, jose.ES256); err != nil {
		t.Fatalf("after the interval: %v", err)
	}
	if got := f.jwksHits.Load(); got != 3 {
		t.Fatalf("jwks fetched %d times, want 3", got)
	}
	if got := f.discovered.Load(); got != 1 {
		t.Fatalf("discovery fetched %d times, want 1 (cached)", got)
	}
}

func TestVerifyIDToken_WithdrawnKeyStopsVerifyingAfterMaxAge(t *testing.T) {
	k := rsaKey(t, "k")
	f := newFakeUpstream(t, k)
	clock := &testClock{now: time.Unix(1_800_000_000, 0)}
	p := newTestProvider(t, f, clock)
	tok := func() string {
		now := clock.Now()
		return sign(t, k, jose.RS256, testClaims{Issuer: f.srv.URL, Subject: "s", Audience: jwt.Audience{testClientID},
			Expiry: jwt.NewNumericDate(now.Add(time.Hour)), IssuedAt: jwt.NewNumericDate(now)})
	}
	if _, err := p.VerifyIDToken(context.Background(), tok(), ""); err != nil {
		t.Fatal(err)
	}
	f.setKeys(rsaKey(t, "new"))
	clock.Advance(DefaultKeysMaxAge)
	var te *TokenError
	if _, err := p.VerifyIDToken(context.Background(), tok(), ""); !errors.As(err, &te) || te.Reason != ReasonUnknownKey {
		t.Fatalf("withdrawn key: %v", err)
	}
}

// Options.IDTokenMaxAge bounds how old an ID token's iat may be, beyond the
// clock skew: a token that leaked long ago is refused even while its exp is
// still ahead.
func TestVerifyIDToken_IDTokenMaxAgeFromOptions(t *testing.T) {
	k := rsaKey(t, "k")
	f := newFakeUpstream(t, k)
	clock := &testClock{now: time.Unix(1_800_000_000, 0)}
	reg := NewRegistry([]config.Upstream{{Name: "partner", Issuer: f.srv.URL, ClientID: testClientID}},
		Options{HTTPClient: f.srv.Client(), Clock: clock.Now, IDTokenMaxAge: 2 * time.Minute, Leeway: 10 * time.Second})
	p, _ := reg.Lookup("partner")
	issuedAgo := func(d time.Duration) string {
		now := clock.Now()
		return sign(t, k, jose.RS256, testClaims{Issuer: f.srv.URL, Subject: "s", Audience: jwt.Audience{testClientID},
			Expiry: jwt.NewNumericDate(now.Add(time.Hour)), IssuedAt: jwt.NewNumericDate(now.Add(-d))})
	}
	for _, tc := range []struct {
		name   string
		ago    time.Duration
		reason Reason
	}{
		{"just issued", 0, ""},
		{"max age and skew, less a second", 2*time.Minute + 9*time.Second, ""},
		{"max age and skew, and a second", 2*time.Minute + 11*time.Second, ReasonTooOld},
		{"an hour old, exp still ahead", time.Hour, ReasonTooOld},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := p.VerifyIDToken(context.Background(), issuedAgo(tc.ago), "")
			var te *TokenError
			switch {
			case tc.reason == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.reason != "" && (!errors.As(err, &te) || te.Reason != tc.reason):
				t.Fatalf("err = %v, want reason %s", err, tc.reason)
			}
		})
	}
}

func TestVerifyIDToken_UpstreamUnavailable(t *testing.T) {
	k := rsaKey(t, "k")
	claims := testClaims{Subject: "s", Audience: jwt.Audience{testClientID}}
	t.Run("down", func(t *testing.T) {
		f := newFakeUpstream(t, k)
		f.srv.Close()
		p := newTestProvider(t, f, &testClock{now: time.Now()})
		if _, err := p.VerifyIDToken(context.Background(), sign(t, k, jose.RS256, claims), ""); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("err = %v, want ErrUnavailable", err)
		}
		if _, err := p.AuthCodeURL(context.Background(), Flow{State: "s", Nonce: "n", Verifier: "v"}); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("AuthCodeURL err = %v, want ErrUnavailable", err)
		}
	})
	t.Run("discovery names another issuer", func(t *testing.T) {
		f := newFakeUpstream(t, k)
		f.mu.Lock()
		f.issuer = "https://impostor.example"
		f.mu.Unlock()
		p := newTestProvider(t, f, &testClock{now: time.Now()})
		if _, err := p.VerifyIDToken(context.Background(), sign(t, k, jose.RS256, claims), ""); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("err = %v, want ErrUnavailable", err)
		}
	})
	t.Run("recovers once reachable", func(t *testing.T) {
		f := newFakeUpstream(t, k)
		f.down.Store(true)
		clock := &testClock{now: time.Now()}
		p := newTestProvider(t, f, clock)
		c := claims
		c.Issuer = f.srv.URL
		c.Expiry, c.IssuedAt = jwt.NewNumericDate(clock.Now().Add(time.Hour)), jwt.NewNumericDate(clock.Now())
		raw := sign(t, k, jose.RS256, c)
		if _, err := p.VerifyIDToken(context.Background(), raw, ""); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("err = %v, want ErrUnavailable", err)
		}
		f.down.Store(false)
		if _, err := p.VerifyIDToken(context.Background(), raw, ""); err != nil {
			t.Fatalf("after recovery: %v", err)
		}
	})
}

func TestAuthCodeURL_StateNoncePKCE(t *testing.T) {
	f := newFakeUpstream(t)
	p := newTestProvider(t, f, &testClock{now: time.Now()})
	verifier := "0123456789abcdefghijklmnopqrstuvwxyz-ABCDEFGH"
	u, err := p.AuthCodeURL(context.Background(), Flow{RedirectURI: "https://otpstep.example/cb", State: "st", Nonce: "no", Verifier: verifier})
	if err != nil {
		t.Fatal(err)
	}
	sum := crypto.SHA256.New()
	sum.Write([]byte(verifier))
	challenge := base64.RawURLEncoding.EncodeToString(sum.Sum(nil))
	for _, want := range []string{f.srv.URL + "/authorize?", "state=st", "nonce=no", "code_challenge_method=S256",
		"code_challenge=" + challenge, "client_id=" + testClientID, "scope=openid", "response_type=code",
		"redirect_uri=https%3A%2F%2Fotpstep.example%2Fcb"} {
		if !strings.Contains(u, want) {
			t.Errorf("%s lacks %s", u, want)
		}
	}
}

func TestAllowedAlgorithms_NeverNoneNorHMAC(t *testing.T) {
	for _, a := range allowedAlgorithms {
		if a == "none" || strings.HasPrefix(string(a), "HS") {
			t.Fatalf("%s is allowed", a)
		}
	}
}

// A replay record must outlive the token's acceptance: AcceptedUntil is the
// earlier of exp and iat plus the max age, plus the skew, and a token is
// refused just after it (so nothing needs remembering longer).
func TestAcceptedUntil_IsWhenVerifyIDTokenStopsAccepting(t *testing.T) {
	k1 := rsaKey(t, "k1")
	f := newFakeUpstream(t, k1)
	clock := &testClock{now: time.Unix(1_800_000_000, 0)}
	p := newTestProvider(t, f, clock)
	iat := clock.Now()
	for _, exp := range []time.Time{iat.Add(time.Hour), iat.Add(3 * time.Minute)} {
		raw := sign(t, k1, jose.RS256, testClaims{Issuer: f.srv.URL, Subject: "up-123", Audience: jwt.Audience{testClientID},
			Expiry: jwt.NewNumericDate(exp), IssuedAt: jwt.NewNumericDate(iat), JTI: "j-1"})
		claims, err := p.VerifyIDToken(context.Background(), raw, "")
		if err != nil || claims.JTI != "j-1" {
			t.Fatalf("verify: %+v %v", claims, err)
		}
		until := p.AcceptedUntil(claims)
		want := min(exp.Unix(), iat.Add(DefaultIDTokenMaxAge).Unix()) + int64(DefaultLeeway/time.Second)
		if until.Unix() != want {
			t.Fatalf("exp %s: AcceptedUntil %s, want %s", exp, until, time.Unix(want, 0))
		}
		clock.now = until.Add(time.Second)
		if _, err := p.VerifyIDToken(context.Background(), raw, ""); !errors.Is(err, ErrInvalidIDToken) {
			t.Fatalf("exp %s: accepted after AcceptedUntil: %v", exp, err)
		}
		clock.now = iat
	}
}
