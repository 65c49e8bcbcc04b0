package resource

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeAS is an introspection endpoint answering from a table of tokens.
type fakeAS struct {
	srv    *httptest.Server
	calls  atomic.Int64
	mu     sync.Mutex
	tokens map[string]map[string]any
	status int // 0: 200
}

func newFakeAS(t *testing.T) *fakeAS {
	f := &fakeAS{tokens: map[string]map[string]any{}}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.calls.Add(1)
		id, secret, ok := r.BasicAuth()
		if !ok || id != "rs" || secret != "rs%2Bsecret" { // RFC 6749 §2.3.1 form-encoding of "rs+secret"
			http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
			return
		}
		f.mu.Lock()
		status, answer := f.status, f.tokens[r.PostFormValue("token")]
		f.mu.Unlock()
		if status != 0 {
			w.WriteHeader(status)
			return
		}
		if answer == nil {
			answer = map[string]any{"active": false}
		}
		_ = json.NewEncoder(w).Encode(answer)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAS) set(token string, answer map[string]any) {
	f.mu.Lock()
	f.tokens[token] = answer
	f.mu.Unlock()
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newGuard(t *testing.T, f *fakeAS, c *clock, mutate func(*Config)) *Guard {
	t.Helper()
	cfg := Config{IntrospectionURL: f.srv.URL, ClientID: "rs", ClientSecret: "rs+secret", HTTPClient: f.srv.Client(), Clock: c.Now}
	if mutate != nil {
		mutate(&cfg)
	}
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func call(h http.Handler, authorization ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, "/payments", nil)
	for _, a := range authorization {
		req.Header.Add("Authorization", a)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestProtect_AnswersEachCaseWithRFC6750And9470Challenges(t *testing.T) {
	c := &clock{now: time.Unix(1_800_000_000, 0)}
	f := newFakeAS(t)
	login := func(acr string, authAgo time.Duration, scope string) map[string]any {
		return map[string]any{
			"active": true, "sub": "user-1", "client_id": "rp", "scope": scope,
			"exp": c.Now().Add(time.Hour).Unix(), "acr": acr, "auth_time": c.Now().Add(-authAgo).Unix(), "amr": []string{"pwd"},
		}
	}
	f.set("aal1fresh", login("aal1", time.Minute, "openid pay"))
	f.set("aal2fresh", login("aal2", time.Minute, "openid pay"))
	f.set("aal2old", login("aal2", 10*time.Minute, "openid pay"))
	f.set("aal2noscope", login("aal2", time.Minute, "openid"))
	f.set("expired", map[string]any{"active": true, "sub": "user-1", "exp": c.Now().Add(-time.Second).Unix(), "acr": "aal2", "auth_time": c.Now().Unix()})
	f.set("clientcreds", map[string]any{"active": true, "sub": "rp", "client_id": "rp", "scope": "pay", "exp": c.Now().Add(time.Hour).Unix()})

	g := newGuard(t, f, c, nil)
	var reached *Token
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := TokenFrom(r.Context())
		if !ok {
			t.Error("no token in the context")
		}
		reached = tok
		w.WriteHeader(http.StatusNoContent)
	})
	strict := g.Protect(Require{Scopes: []string{"pay"}, ACR: "aal2", MaxAge: 5 * time.Minute}, next)
	open := g.Protect(Require{}, next)

	const stepUpACR = `Bearer error="insufficient_user_authentication", error_description="A different authentication level is required.", acr_values="aal2", max_age="300"`
	const stepUpAge = `Bearer error="insufficient_user_authentication", error_description="More recent authentication is required.", acr_values="aal2", max_age="300"`
	const invalid = `Bearer error="invalid_token", error_description="The access token is not active."`
	for _, tc := range []struct {
		name       string
		h          http.Handler
		auth       []string
		wantStatus int
		wantHeader string
		wantError  string
	}{
		{"no header", strict, nil, 401, "Bearer", ""},
		{"another scheme", strict, []string{"Basic cnM6cnM="}, 401, "Bearer", ""},
		{"empty bearer", strict, []string{"Bearer "}, 400, `Bearer error="invalid_request", error_description="The bearer token is malformed."`, "invalid_request"},
		{"bad characters", strict, []string{`Bearer a"b`}, 400, `Bearer error="invalid_request", error_description="The bearer token is malformed."`, "invalid_request"},
		{"two headers", strict, []string{"Bearer aal2fresh", "Bearer aal2fresh"}, 400, `Bearer error="invalid_request", error_description="More than one Authorization header."`, "invalid_request"},
		{"unknown token", strict, []string{"Bearer nope"}, 401, invalid, "invalid_token"},
		{"past its exp by our clock", open, []string{"Bearer expired"}, 401, invalid, "invalid_token"},
		{"scope missing", strict, []string{"Bearer aal2noscope"}, 403, `Bearer error="insufficient_scope", error_description="The access token lacks a scope this resource needs.", scope="pay"`, "insufficient_scope"},
		{"aal1 on an aal2 route", strict, []string{"Bearer aal1fresh"}, 401, stepUpACR, "insufficient_user_authentication"},
		{"login too old", strict, []string{"Bearer aal2old"}, 401, stepUpAge, "insufficient_user_authentication"},
		{"no login at all", strict, []string{"Bearer clientcreds"}, 401, stepUpACR, "insufficient_user_authentication"},
		{"aal2 and fresh", strict, []string{"Bearer aal2fresh"}, 204, "", ""},
		{"scheme is case-insensitive", strict, []string{"bearer aal2fresh"}, 204, "", ""},
		{"aal1 on an open route", open, []string{"Bearer aal1fresh"}, 204, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reached = nil
			rec := call(tc.h, tc.auth...)
			if rec.Code != tc.wantStatus || rec.Header().Get("WWW-Authenticate") != tc.wantHeader {
				t.Fatalf("got %d %q\nwant %d %q", rec.Code, rec.Header().Get("WWW-Authenticate"), tc.wantStatus, tc.wantHeader)
			}
			if tc.wantStatus == 204 {
				if reached == nil || reached.Subject == "" {
					t.Fatalf("handler got token %+v", reached)
				}
				return
			}
			if reached != nil {
				t.Fatal("the wrapped handler ran")
			}
			var body map[string]string
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body["error"] != tc.wantError || body["error_description"] == "" {
				t.Fatalf("body %s (%v), want error %q", rec.Body, err, tc.wantError)
			}
		})
	}

	// The same aal2 token is refused once the clock passes max_age.
	c.Advance(5 * time.Minute)
	if rec := call(strict, "Bearer aal2fresh"); rec.Code != 401 || rec.Header().Get("WWW-Authenticate") != stepUpAge {
		t.Fatalf("after 5 more minutes: %d %q", rec.Code, rec.Header().Get("WWW-Authenticate"))
	}
}

func TestProtect_TokenFromCarriesTheIntrospection(t *testing.T) {
	c := &clock{now: time.Unix(1_800_000_000, 0)}
	f := newFakeAS(t)
	f.set("t", map[string]any{"active": true, "sub": "u", "client_id": "rp", "scope": "a b", "aud": "api", "iss": "https://id",
		"exp": c.Now().Add(time.Hour).Unix(), "iat": c.Now().Unix(), "acr": "aal2", "auth_time": c.Now().Unix(), "amr": []string{"pwd", "otp"}, "sid": "s1"})
	var got *Token
	h := newGuard(t, f, c, nil).Protect(Require{ACR: "aal1"}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got, _ = TokenFrom(r.Context()) }))
	if rec := call(h, "Bearer t"); rec.Code != 200 {
		t.Fatalf("status %d", rec.Code)
	}
	want := fmt.Sprintf("%v %v %s %s %v %s %v %s %d %d %v", true, []string{"a", "b"}, "rp", "u", []string{"api"}, "https://id", c.Now().Add(time.Hour).Unix(), "aal2", c.Now().Unix(), c.Now().Unix(), []string{"pwd", "otp"})
	have := fmt.Sprintf("%v %v %s %s %v %s %v %s %d %d %v", got.Active, got.Scopes, got.ClientID, got.Subject, got.Audience, got.Issuer, got.ExpiresAt.Unix(), got.ACR, got.AuthTime.Unix(), got.IssuedAt.Unix(), got.AMR)
	if have != want || got.Raw["sid"] != "s1" {
		t.Fatalf("token\n have %s\n want %s (raw %v)", have, want, got.Raw)
	}
}

// A failing introspection endpoint is not a verdict on the token: 503.
func TestProtect_IntrospectionFailureIs503(t *testing.T) {
	c := &clock{now: time.Unix(1_800_000_000, 0)}
	for _, tc := range []struct {
		name  string
		setup func(*fakeAS, *Config)
	}{
		{"server error", func(f *fakeAS, _ *Config) { f.status = http.StatusInternalServerError }},
		{"our credentials refused", func(_ *fakeAS, cfg *Config) { cfg.ClientSecret = "wrong" }},
		{"unreachable", func(f *fakeAS, _ *Config) { f.srv.Close() }},
		{"not an RFC 7662 answer", func(f *fakeAS, _ *Config) { f.set("t", map[string]any{"valid": true}) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeAS(t)
			f.set("t", map[string]any{"active": true, "sub": "u"})
			g := newGuard(t, f, c, func(cfg *Config) { tc.setup(f, cfg) })
			rec := call(g.Protect(Require{}, http.NotFoundHandler()), "Bearer t")
			if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" || rec.Header().Get("WWW-Authenticate") != "" {
				t.Fatalf("got %d %v", rec.Code, rec.Header())
			}
		})
	}
}

func TestIntrospect_CacheKeepsActiveAnswersBriefly(t *testing.T) {
	c := &clock{now: time.Unix(1_800_000_000, 0)}
	f := newFakeAS(t)
	f.set("t", map[string]any{"active": true, "sub": "u", "exp": c.Now().Add(time.Hour).Unix()})
	f.set("short", map[string]any{"active": true, "sub": "u", "exp": c.Now().Add(10 * time.Second).Unix()})
	g := newGuard(t, f, c, func(cfg *Config) { cfg.CacheTTL = time.Hour; cfg.CacheSize = 2 })
	ctx := t.Context()
	intro := func(tok string) *Token {
		t.Helper()
		got, err := g.Introspect(ctx, tok)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	intro("t")
	intro("t")
	if n := f.calls.Load(); n != 1 {
		t.Fatalf("calls = %d, want 1 (the second answered from the cache)", n)
	}
	intro("nope")
	intro("nope")
	if n := f.calls.Load(); n != 3 {
		t.Fatalf("calls = %d, want 3 (inactive answers are not kept)", n)
	}
	// The TTL is capped at MaxCacheTTL whatever Config says.
	c.Advance(MaxCacheTTL)
	intro("t")
	if n := f.calls.Load(); n != 4 {
		t.Fatalf("calls = %d, want 4 (expired after MaxCacheTTL)", n)
	}
	// Never past the token's own exp.
	intro("short")
	c.Advance(10 * time.Second)
	if got := intro("short"); got.Active {
		t.Fatal("a cached token past its exp is still active")
	}
	// The size is bounded.
	for i := range 5 {
		f.set(fmt.Sprint("k", i), map[string]any{"active": true, "sub": "u"})
		intro(fmt.Sprint("k", i))
	}
	if n := g.cache.len(); n > 2 {
		t.Fatalf("cache holds %d entries, want at most 2", n)
	}
}

func TestNew_RefusesBadConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{IntrospectionURL: "/oauth2/introspect", ClientID: "rs"}, "Config.IntrospectionURL"},
		{Config{IntrospectionURL: "ftp://id/x", ClientID: "rs"}, "Config.IntrospectionURL"},
		{Config{IntrospectionURL: "https://id/x"}, "Config.ClientID"},
		{Config{IntrospectionURL: "https://id/x", ClientID: "rs", CacheTTL: -1}, "Config.CacheTTL"},
		{Config{IntrospectionURL: "https://id/x", ClientID: "rs", Realm: `a"b`}, "Config.Realm"},
	} {
		if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want an error naming %s", tc.cfg, err, tc.want)
		}
	}
}

func TestSatisfiesAAL(t *testing.T) {
	for _, tc := range []struct {
		have, want string
		ok         bool
	}{
		{"aal2", "aal2", true}, {"aal3", "aal2", true}, {"aal1", "aal2", false}, {"", "aal1", false},
		{"urn:x", "urn:x", true}, {"urn:x", "aal1", false}, {"aal9", "aal1", false},
	} {
		if got := SatisfiesAAL(tc.have, tc.want); got != tc.ok {
			t.Errorf("SatisfiesAAL(%q, %q) = %v", tc.have, tc.want, got)
		}
	}
}
