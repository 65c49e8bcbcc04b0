package plugin_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"html"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/mux"
	"golang.org/x/oauth2"

	"github.com/otpstep/otpstep/plugin"
	"github.com/otpstep/otpstep/plugin/plugintest"
	"github.com/otpstep/otpstep/storage"
	"github.com/otpstep/otpstep/storage/storagetest"
	"github.com/otpstep/otpstep/storage/storagetest/faultproxy"
	"github.com/otpstep/otpstep/web/openapitest"
)

// outageQueryTimeout is database.query_timeout in the outage tests: small,
// so a stalled database answers 503 soon.
const outageQueryTimeout = 500 * time.Millisecond

// outageFixture is what the outage tests ask for while the database fails:
// a confidential client, a user, its tokens (with the user-API scopes).
type outageFixture struct {
	srv     *plugintest.Server
	client  *plugintest.Client
	user    *plugintest.User
	access  string
	refresh string
	browser http.CookieJar // the login session's cookies
	http    *http.Client
	spec    *openapitest.Validator
	// login is the logged-in browser; code and verifier an unused
	// authorization code of its login session and its PKCE verifier.
	login          *plugintest.Browser
	code, verifier string
}

// newCode sets f.code to a new authorization code of the login session.
func (f *outageFixture) newCode(t *testing.T) {
	t.Helper()
	f.verifier = oauth2.GenerateVerifier()
	page := f.login.Follow(f.client.Conf.AuthCodeURL(plugintest.RandomString(12), oauth2.S256ChallengeOption(f.verifier),
		oauth2.SetAuthURLParam("nonce", plugintest.RandomString(12))), plugintest.RedirectURI)
	if f.code = page.URL.Query().Get("code"); f.code == "" {
		t.Fatalf("no code: %s", page)
	}
}

func newOutageFixture(t *testing.T, srv *plugintest.Server) *outageFixture {
	t.Helper()
	c := srv.NewClient(t, false, allUserScopes...)
	u := srv.NewUser(t)
	login := srv.LoginWithPassword(t, c, u)
	tok := login.Token
	jar, _ := cookiejar.New(nil)
	f := &outageFixture{srv: srv, client: c, user: u, access: tok.AccessToken, refresh: tok.RefreshToken, browser: login.Browser.Client.Jar, login: login.Browser,
		spec: openapitest.LoadPrefix(t, openapitest.DefaultPrefix),
		// A stalled database must not hang a request: every request of
		// these tests returns within the query timeout plus this margin.
		http: &http.Client{Jar: jar, Timeout: outageQueryTimeout + 5*time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	f.newCode(t)
	return f
}

// outageAnswer is one endpoint's response.
type outageAnswer struct {
	status int
	header http.Header
	body   string
}

// do sends req and checks the answer against web/openapi.yaml.
func (f *outageFixture) do(t *testing.T, req *http.Request) outageAnswer {
	t.Helper()
	resp, body := f.spec.CheckRoundTrip(t, f.http, req)
	return outageAnswer{status: resp.StatusCode, header: resp.Header, body: string(body)}
}

func (f *outageFixture) form(t *testing.T, path string, form url.Values, basic bool) outageAnswer {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basic {
		req.SetBasicAuth(url.QueryEscape(f.client.ID), url.QueryEscape(f.client.Secret))
	}
	return f.do(t, req)
}

var csrfField = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// outageEndpoint is one request the outage tests send, and how each kind of
// endpoint says "temporarily unavailable".
type outageEndpoint struct {
	name string
	kind string // "oauth2", "page" or "api"
	send func(t *testing.T, f *outageFixture) outageAnswer
	// ok checks the answer once the database is back.
	ok func(a outageAnswer) bool
}

var outageEndpoints = []outageEndpoint{
	{"token refresh", "oauth2", func(t *testing.T, f *outageFixture) outageAnswer {
		a := f.form(t, "/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {f.refresh}}, true)
		if a.status == 200 { // rotated: the old tokens are revoked
			var body map[string]any
			_ = json.Unmarshal([]byte(a.body), &body)
			f.access, _ = body["access_token"].(string)
			f.refresh, _ = body["refresh_token"].(string)
		}
		return a
	}, func(a outageAnswer) bool { return a.status == 200 }},
	{"token authorization_code", "oauth2", func(t *testing.T, f *outageFixture) outageAnswer {
		// The code exchange checks the grant (the user's row, the login
		// session) in its transaction; a failed exchange consumed nothing.
		a := f.form(t, "/oauth2/token", url.Values{"grant_type": {"authorization_code"}, "code": {f.code},
			"redirect_uri": {plugintest.RedirectURI}, "code_verifier": {f.verifier}}, true)
		if a.status == 200 {
			f.newCode(t)
		}
		return a
	}, func(a outageAnswer) bool { return a.status == 200 }},
	{"token client_credentials", "oauth2", func(t *testing.T, f *outageFixture) outageAnswer {
		return f.form(t, "/oauth2/token", url.Values{"grant_type": {"client_credentials"}}, true)
	}, func(a outageAnswer) bool { return a.status == 200 }},
	{"introspection", "oauth2", func(t *testing.T, f *outageFixture) outageAnswer {
		return f.form(t, "/oauth2/introspect", url.Values{"token": {f.access}}, true)
	}, func(a outageAnswer) bool { return a.status == 200 && strings.Contains(a.body, `"active":true`) }},
	{"revocation", "oauth2", func(t *testing.T, f *outageFixture) outageAnswer {
		return f.form(t, "/oauth2/revoke", url.Values{"token": {"unknown-" + plugintest.RandomString(8)}}, true)
	}, func(a outageAnswer) bool { return a.status == 200 }},
	{"userinfo", "oauth2", func(t *testing.T, f *outageFixture) outageAnswer {
		req, _ := http.NewRequest(http.MethodGet, f.srv.URL+"/userinfo", nil)
		req.Header.Set("Authorization", "Bearer "+f.access)
		return f.do(t, req)
	}, func(a outageAnswer) bool { return a.status == 200 }},
	{"authorize", "authorize", func(t *testing.T, f *outageFixture) outageAnswer {
		q := url.Values{"client_id": {f.client.ID}, "response_type": {"code"}, "scope": {"openid"},
			"redirect_uri": {plugintest.RedirectURI}, "state": {plugintest.RandomString(12)},
			"code_challenge": {plugintest.RandomString(32)}, "code_challenge_method": {"S256"}}
		req, _ := http.NewRequest(http.MethodGet, f.srv.URL+"/oauth2/auth?"+q.Encode(), nil)
		for _, c := range f.browser.Cookies(req.URL) { // logged in
			req.AddCookie(c)
		}
		return f.do(t, req)
	}, func(a outageAnswer) bool {
		return a.status == http.StatusSeeOther && strings.Contains(a.header.Get("Location"), "code=")
	}},
	{"login page POST", "page", func(t *testing.T, f *outageFixture) outageAnswer {
		// The login form needs no database; its POST does.
		req, _ := http.NewRequest(http.MethodGet, f.srv.URL+"/login", nil)
		page := f.do(t, req)
		m := csrfField.FindStringSubmatch(page.body)
		if page.status != 200 || m == nil {
			t.Fatalf("GET /login = %d without a CSRF token", page.status)
		}
		post, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/login", strings.NewReader(url.Values{
			"email": {f.user.Email}, "password": {f.user.Password}, "csrf_token": {html.UnescapeString(m[1])}}.Encode()))
		post.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		post.Header.Set("Origin", f.srv.URL)
		return f.do(t, post)
	}, func(a outageAnswer) bool { return a.status == 200 }},
	{"user API", "api", func(t *testing.T, f *outageFixture) outageAnswer {
		body, _ := json.Marshal(map[string]any{"userId": f.user.ID, "passedLoginOTP": false})
		req, _ := http.NewRequest(http.MethodPut, f.srv.URL+openapitest.DefaultPrefix+"/sessions/"+uuid.NewString(), strings.NewReader(string(body)))
		req.Header.Set("Authorization", "Bearer "+f.access)
		req.Header.Set("Content-Type", "application/json")
		return f.do(t, req)
	}, func(a outageAnswer) bool { return a.status == 200 }},
	{"jwks", "api", func(t *testing.T, f *outageFixture) outageAnswer {
		// The key set is read from storage on every request.
		req, _ := http.NewRequest(http.MethodGet, f.srv.URL+"/.well-known/jwks.json", nil)
		return f.do(t, req)
	}, func(a outageAnswer) bool { return a.status == 200 && strings.Contains(a.body, `"kid"`) }},
	{"readiness", "health", func(t *testing.T, f *outageFixture) outageAnswer {
		req, _ := http.NewRequest(http.MethodGet, f.srv.AdminURL+"/health/ready", nil)
		return f.do(t, req)
	}, func(a outageAnswer) bool { return a.status == 200 }},
}

// checkUnavailable holds every endpoint to 503 with Retry-After, in its own
// kind's words, never a verdict.
func (f *outageFixture) checkUnavailable(t *testing.T) {
	t.Helper()
	for _, e := range outageEndpoints {
		start := time.Now()
		a := e.send(t, f)
		t.Logf("%s: %d in %s", e.name, a.status, time.Since(start).Round(time.Millisecond))
		if a.header.Get("Retry-After") == "" || a.status != http.StatusServiceUnavailable && e.kind != "authorize" {
			t.Errorf("%s: got %d (Retry-After %q) %s", e.name, a.status, a.header.Get("Retry-After"), a.body)
			continue
		}
		switch e.kind {
		case "authorize":
			// A client read from the cache is verified: RFC 6749 §4.1.2.1
			// temporarily_unavailable goes to its redirect URI.
			loc, _ := url.Parse(a.header.Get("Location"))
			if a.status == http.StatusSeeOther && loc != nil && strings.HasPrefix(loc.String(), plugintest.RedirectURI) &&
				loc.Query().Get("error") == "temporarily_unavailable" {
				continue
			}
			if a.status != http.StatusServiceUnavailable || !strings.Contains(a.body, "temporarily unavailable") {
				t.Errorf("%s: got %d %s %s", e.name, a.status, a.header.Get("Location"), a.body)
			}
			continue
		case "oauth2":
			var body struct{ Error string }
			if json.Unmarshal([]byte(a.body), &body) != nil || body.Error != "temporarily_unavailable" {
				t.Errorf("%s: body %s, want error temporarily_unavailable", e.name, a.body)
			}
		case "page":
			if !strings.Contains(a.body, "temporarily unavailable") {
				t.Errorf("%s: page %s", e.name, a.body)
			}
		case "api":
			if !strings.Contains(a.body, `"code":"unavailable"`) {
				t.Errorf("%s: body %s", e.name, a.body)
			}
		}
	}
}

// checkRecovered holds every endpoint to its normal answer.
func (f *outageFixture) checkRecovered(t *testing.T) {
	t.Helper()
	for _, e := range outageEndpoints {
		if a := e.send(t, f); !e.ok(a) {
			t.Errorf("%s after recovery: got %d %s", e.name, a.status, a.body)
		}
	}
}

// checkRecoveredWithin is checkRecovered, each endpoint retried until it
// succeeds or d has passed.
func (f *outageFixture) checkRecoveredWithin(t *testing.T, d time.Duration) {
	t.Helper()
	for _, e := range outageEndpoints {
		deadline := time.Now().Add(d)
		for {
			a := e.send(t, f)
			if e.ok(a) {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%s after recovery: got %d %s", e.name, a.status, a.body)
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// outageConfig is the configuration of the outage tests: a small query
// timeout, and no client cache, so every OAuth2 request reads its client.
func outageConfig(c *plugin.Config) {
	c.Database.QueryTimeout = outageQueryTimeout
	c.OAuth2.ClientCacheTTL = 0
}

// With the database closed, every endpoint answers 503 with Retry-After;
// nothing leaks the cause, nothing is a verdict about the token or client.
// Clients come from the cache (as by default), so fosite reads the client
// and then fails on the token: the path where it keeps only the message of
// the storage error (introspection said {"active":false}).
func TestUnavailable_DatabaseClosedIs503Everywhere(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv := plugintest.Start(t, dialect, func(c *plugin.Config) { c.Database.QueryTimeout = outageQueryTimeout })
		f := newOutageFixture(t, srv)
		api := newAPIClient(t, srv)
		if err := srv.Store.Close(); err != nil {
			t.Fatal(err)
		}
		f.checkUnavailable(t)
		// The user API's 503 is the documented JSON:API error.
		resp := api.putSession(f.access, uuid.NewString(), f.user.ID, false)
		if resp.Status != 503 || resp.errorCode(t) != "unavailable" || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("got %d %s", resp.Status, resp.Body)
		}
	})
}

// startBehindProxy runs a server on a throwaway PostgreSQL database reached
// only through a fault proxy.
func startBehindProxy(t *testing.T) (*plugintest.Server, *faultproxy.Proxy) {
	t.Helper()
	dsn := storagetest.PostgresDSN(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	proxy := faultproxy.Start(t, u.Host)
	u.Host = proxy.Addr()
	store, err := storage.Open(context.Background(), u.String(), storage.Options{QueryTimeout: outageQueryTimeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	if err := store.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return plugintest.StartOn(t, store, outageConfig), proxy
}

// PostgreSQL refusing and resetting connections: every endpoint 503, then
// back to normal without a restart once it answers again.
func TestUnavailable_PostgresDownIs503ThenRecovers(t *testing.T) {
	if testing.Short() {
		t.Skip("outage test through a fault proxy: skipped under -short")
	}
	srv, proxy := startBehindProxy(t)
	f := newOutageFixture(t, srv)
	proxy.Down()
	f.checkUnavailable(t)
	proxy.Pass()
	f.checkRecovered(t)
}

// PostgreSQL frozen (the proxy forwards nothing, closes nothing): every
// endpoint still answers 503 (within database.query_timeout: the client
// gives up at the timeout plus 5 s), the goroutines that waited go away, and
// the same requests succeed once it answers again: the refresh token whose
// rotation was cut short still works, so nothing was half-written.
func TestUnavailable_PostgresStalledIs503WithinQueryTimeout(t *testing.T) {
	if testing.Short() {
		t.Skip("stall test through a fault proxy: skipped under -short")
	}
	srv, proxy := startBehindProxy(t)
	f := newOutageFixture(t, srv)
	f.checkRecovered(t) // warm pools and connections before the baseline
	f.http.CloseIdleConnections()
	baseline := settledGoroutines(0, 0)

	proxy.Stall()
	f.checkUnavailable(t)
	proxy.Pass()
	// A request that arrives just after the stall may be handed a
	// connection whose dial began during it (the pool shares dials with its
	// waiters, and the dispatchers keep dialling); that dial fails at its
	// connect timeout, which is database.query_timeout, so the request
	// answers 503 once (logged: "failed to connect ... timeout") and the
	// next one succeeds. Recovery is therefore allowed one query timeout
	// and the request's own: 2 × outageQueryTimeout, not more.
	f.checkRecoveredWithin(t, 2*outageQueryTimeout)
	f.http.CloseIdleConnections()
	if n := settledGoroutines(baseline+10, 20*time.Second); n > baseline+10 {
		t.Errorf("goroutines %d after the stall, baseline %d", n, baseline)
	}
}

// settledGoroutines waits up to d for the goroutine count to fall to at most
// limit and returns it.
func settledGoroutines(limit int, d time.Duration) int {
	deadline := time.Now().Add(d)
	for {
		runtime.GC()
		n := runtime.NumGoroutine()
		if n <= limit || time.Now().After(deadline) {
			return n
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// mountTmpfs mounts a tmpfs of size on a fresh directory for the test, or
// skips when that is not possible (not root, no mount permission).
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("full-disk test: needs root to mount a small tmpfs")
	}
	dir := filepath.Join(t.TempDir(), "fs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("full-disk test: mount -t tmpfs failed: %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	return dir
}

// fillDisk writes path until the filesystem refuses another byte.
func fillDisk(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			break
		}
	}
	for { // the last bytes of a partly written chunk
		if _, err := f.Write(chunk[:512]); err != nil {
			break
		}
	}
}

// SQLite on a full disk: what needs a write answers 503 with Retry-After
// and readiness fails, reads still answer truthfully; once space is back
// everything works without a restart, and nothing committed is lost.
func TestUnavailable_SQLiteDiskFullIs503ThenRecovers(t *testing.T) {
	dir := mountTmpfs(t, "4m")
	dbPath := filepath.Join(dir, "otpstep.db")
	ctx := context.Background()
	store, err := storage.Open(ctx, "sqlite://"+dbPath, storage.Options{QueryTimeout: outageQueryTimeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	if err := store.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	srv := plugintest.StartOn(t, store, outageConfig)
	f := newOutageFixture(t, srv)
	var kept []string // users committed before the disk filled
	for range 20 {
		kept = append(kept, srv.NewUser(t).ID)
	}

	// Empty the WAL, so that the next write must grow a file.
	side, err := sql.Open("sqlite", dbPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := side.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		t.Fatal(err)
	}
	_ = side.Close()
	filler := filepath.Join(dir, "filler")
	fillDisk(t, filler)

	byName := map[string]outageEndpoint{}
	for _, e := range outageEndpoints {
		byName[e.name] = e
	}
	for _, name := range []string{"login page POST", "token refresh", "user API", "readiness"} {
		a := byName[name].send(t, f)
		if a.status != http.StatusServiceUnavailable || a.header.Get("Retry-After") == "" {
			t.Errorf("disk full: %s: got %d (Retry-After %q) %s", name, a.status, a.header.Get("Retry-After"), a.body)
		}
		if name == "token refresh" && !strings.Contains(a.body, "temporarily_unavailable") {
			t.Errorf("disk full: token refresh body %s", a.body)
		}
	}
	// A read is still the truth: the token is active.
	if a := byName["introspection"].send(t, f); !byName["introspection"].ok(a) {
		t.Errorf("disk full: introspection got %d %s", a.status, a.body)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	// No restart: the same server and pool serve again; the refresh token
	// whose rotation failed still works (the transaction rolled back).
	f.checkRecovered(t)
	for _, id := range kept {
		if _, err := srv.Store.GetUser(ctx, id); err != nil {
			t.Errorf("user %s committed before the disk filled: %v", id, err)
		}
	}
	var integrity string
	if err := srv.Store.Ready(ctx); err != nil {
		t.Errorf("ready after recovery: %v", err)
	}
	side, err = sql.Open("sqlite", dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer side.Close()
	if err := side.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&integrity); err != nil || integrity != "ok" {
		t.Errorf("integrity_check = %q, %v", integrity, err)
	}
}

// An unavailable database is logged at ERROR with the request id the
// client was given, on the OAuth2 endpoints as on the others.
func TestUnavailable_LoggedAtErrorWithRequestID(t *testing.T) {
	var logs syncBuffer
	cfg := plugin.DefaultConfig()
	cfg.Secrets.System = strings.Repeat("test-secret-", 4)
	cfg.Database.MigrateOnStart = false
	cfg.Database.PurgeInterval = 0
	cfg.Mail.Driver = "log"
	store := plugintest.NewStore(t, "sqlite")
	p, err := plugin.New(context.Background(), plugin.Options{Config: cfg, Dev: true, Store: store,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.Close() }()
	r := mux.NewRouter()
	p.Mount(r)
	srv := httptest.NewServer(r)
	defer srv.Close()
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/oauth2/introspect", "/oauth2/token"} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader("token=x&grant_type=client_credentials"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("some-client", "some-secret")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		rid := resp.Header.Get("X-Request-Id")
		if resp.StatusCode != http.StatusServiceUnavailable || rid == "" {
			t.Fatalf("%s: %d, request id %q", path, resp.StatusCode, rid)
		}
		found := false
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, "level=ERROR") && strings.Contains(line, "request_id="+rid) &&
				strings.Contains(line, "database unavailable") {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: no ERROR line with request_id=%s in:\n%s", path, rid, logs.String())
		}
	}
}
