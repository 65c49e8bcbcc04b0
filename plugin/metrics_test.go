package plugin_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/otpstep/otpstep/plugin"
	"github.com/otpstep/otpstep/plugin/plugintest"
	"github.com/otpstep/otpstep/provider/mail/mailtest"
)

// scrape reads /metrics from the admin listener: each sample line keyed
// by its name and labels as printed (name{a="x",b="y"}).
func scrape(t *testing.T, srv *plugintest.Server) map[string]float64 {
	t.Helper()
	resp, err := http.Get(srv.AdminURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("admin /metrics: %d %s", resp.StatusCode, body)
	}
	samples := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("sample %q: %v", line, err)
		}
		samples[line[:i]] = v
	}
	return samples
}

// sample is the value of the series name with exactly these labels (in the
// order Prometheus prints them: sorted by name), and whether it exists.
func sample(m map[string]float64, name string, labels ...string) (float64, bool) {
	key := name
	if len(labels) > 0 {
		pairs := make([]string, 0, len(labels)/2)
		for i := 0; i < len(labels); i += 2 {
			pairs = append(pairs, labels[i]+`="`+labels[i+1]+`"`)
		}
		key += "{" + strings.Join(pairs, ",") + "}"
	}
	v, ok := m[key]
	return v, ok
}

// Every counter otpstep keeps moves when its outcome happens, and the admin
// listener's /metrics shows it: codes by kind and channel, each verify
// outcome, refusals by limit key, logins by outcome, linked-identity
// events, tokens by grant type, outbox deliveries, failures by class, the
// latency histogram, the backlog gauges, both pools and the build. The
// public listener serves neither /metrics nor /health/ready; the admin
// listener's readiness reports the outbox backlog as information (200
// while the mail server is down).
func TestMetrics_EachCounterMovesOnTheAdminListener(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		smtpSrv := mailtest.StartServer(t)
		f := plugintest.StartFederation(t, dialect, "partner", false, func(c *plugin.Config) {
			smtpMail(smtpSrv)(c)
			c.OTP.MaxAttempts = 1
			c.OTP.MaxFailuresPerUser = 2
			c.OTP.MaxSendsPerHour = 2
			c.OTP.ResendInterval = time.Minute
			c.Login.MaxFailuresPerAccount = 2
			// The test's wrong passwords before the last step (dave's two,
			// the unknown user, the disabled one) stay below it.
			c.Login.MaxFailuresPerIP = 5
		})
		srv := f.Down
		ctx := context.Background()

		for _, path := range []string{"/metrics", "/health/ready"} {
			resp, err := http.Get(srv.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound {
				t.Fatalf("public %s = %d, want 404", path, resp.StatusCode)
			}
		}
		before := scrape(t, srv)
		if v, ok := sample(before, "otpstep_outbox_depth"); !ok || v != 0 {
			t.Fatalf("outbox depth before = %v %v", v, ok)
		}
		if resp, err := http.Get(srv.URL + "/health/alive"); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("public /health/alive: %v %v", resp, err)
		} else {
			resp.Body.Close()
		}

		api := newAPIClient(t, srv)
		ui := srv.NewLoginUI(t, allUserScopes...)
		plain := srv.NewClient(t, false, allUserScopes...)
		newChallenge := func(c *plugintest.Client, u *plugintest.User) (tok, sid, code string) {
			t.Helper()
			login := srv.LoginWithPassword(t, c, u)
			r := api.putSession(login.Token.AccessToken, login.SID, u.ID, false)
			if r.Status != http.StatusOK {
				t.Fatalf("PUT /sessions: %d %s", r.Status, r.Body)
			}
			code, _ = r.json(t)["otp"].(string)
			return login.Token.AccessToken, login.SID, code
		}
		verify := func(tok, code string, want int) {
			t.Helper()
			if r := api.verify(tok, code, "login"); r.Status != want {
				t.Fatalf("verify: %d %s, want %d", r.Status, r.Body, want)
			}
		}

		// passed (a login UI: the code also in the response), then the
		// same session again within otp.resend_interval: refused.
		alice := srv.NewUser(t)
		tok, sid, code := newChallenge(ui, alice)
		verify(tok, code, http.StatusNoContent)
		if r := api.putSession(tok, sid, alice.ID, false); r.Status != http.StatusTooManyRequests {
			t.Fatalf("resend within the interval: %d %s", r.Status, r.Body)
		}
		// A plain client: the code goes by mail only.
		mailOnly := srv.NewUser(t)
		login := srv.LoginWithPassword(t, plain, mailOnly)
		if r := api.putSession(login.Token.AccessToken, login.SID, mailOnly.ID, false); r.Status != http.StatusOK {
			t.Fatalf("PUT /sessions by a plain client: %d %s", r.Status, r.Body)
		}
		// wrong burns the one attempt; the next try is refused: burned.
		bob := srv.NewUser(t)
		tok, _, code = newChallenge(ui, bob)
		verify(tok, wrongCode(code), http.StatusNotFound)
		verify(tok, code, http.StatusTooManyRequests)
		// Two tried failures in two sessions, then locked; a third send
		// in the hour is refused.
		carol := srv.NewUser(t)
		tok1, _, code1 := newChallenge(ui, carol)
		tok2, _, code2 := newChallenge(ui, carol)
		verify(tok1, wrongCode(code1), http.StatusNotFound)
		verify(tok2, wrongCode(code2), http.StatusNotFound)
		verify(tok2, code2, http.StatusTooManyRequests)
		third := srv.LoginWithPassword(t, ui, carol)
		if r := api.putSession(third.Token.AccessToken, third.SID, carol.ID, false); r.Status != http.StatusTooManyRequests {
			t.Fatalf("third send in the hour: %d %s", r.Status, r.Body)
		}

		// Logins: wrong password twice, then limited; unknown; disabled.
		tryLogin := func(email, password string) {
			t.Helper()
			b := plugintest.NewBrowser(t)
			verifier := oauth2.GenerateVerifier()
			page := b.Follow(ui.Conf.AuthCodeURL(plugintest.RandomString(12), oauth2.S256ChallengeOption(verifier),
				oauth2.SetAuthURLParam("nonce", plugintest.RandomString(12))), plugintest.RedirectURI)
			b.Submit(page, "/login", url.Values{"email": {email}, "password": {password}, "return_to": {page.HiddenField("return_to")}}, plugintest.RedirectURI)
		}
		dave := srv.NewUser(t)
		for range 3 {
			tryLogin(dave.Email, "not-"+dave.Password)
		}
		tryLogin("nobody-"+uuid.NewString()+"@example.com", "whatever-password")
		eve := srv.NewUser(t)
		if err := srv.Plugin.Provider.DisableUser(ctx, eve.ID); err != nil {
			t.Fatal(err)
		}
		tryLogin(eve.Email, eve.Password)

		// Tokens: client credentials and a refresh, besides the codes above.
		partner := srv.NewClient(t, false, "admin:federated-identity:write")
		cc := clientcredentials.Config{ClientID: partner.ID, ClientSecret: partner.Secret, TokenURL: srv.URL + "/oauth2/token",
			Scopes: []string{"admin:federated-identity:write"}}
		ccTok, err := cc.Token(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ui.Conf.TokenSource(ctx, &oauth2.Token{RefreshToken: srv.LoginWithPassword(t, ui, alice).Token.RefreshToken}).Token(); err != nil {
			t.Fatalf("refresh: %v", err)
		}
		// Linked identities: linked, refused (another user's subject), unlinked.
		linkPath := func(userID string) string { return "/admin/users/" + userID + "/federated-identities/partner" }
		body := `{"subject":"partner-sub-1"}`
		if r := api.doAbs(http.MethodPut, linkPath(alice.ID), ccTok.AccessToken, body); r.Status != http.StatusOK {
			t.Fatalf("link: %d %s", r.Status, r.Body)
		}
		if r := api.doAbs(http.MethodPut, linkPath(bob.ID), ccTok.AccessToken, body); r.Status != http.StatusConflict {
			t.Fatalf("link of another user's subject: %d %s", r.Status, r.Body)
		}
		if r := api.doAbs(http.MethodDelete, linkPath(alice.ID), ccTok.AccessToken, ""); r.Status != http.StatusNoContent {
			t.Fatalf("unlink: %d %s", r.Status, r.Body)
		}

		// Delivered: every code issued so far (alice, the plain client's,
		// bob, carol twice).
		smtpSrv.WaitMessages(5, 30*time.Second)
		waitSample := func(name string, labels ...string) map[string]float64 {
			t.Helper()
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				m := scrape(t, srv)
				if v, ok := sample(m, name, labels...); ok && v > 0 {
					return m
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s%v did not move", name, labels)
				}
			}
		}
		waitSample("otpstep_outbox_deliveries_total")

		// The mail server down: readiness stays 200 and shows the backlog;
		// the failed attempt is a dial failure. Then it refuses RCPT TO.
		smtpSrv.Down()
		frank := srv.NewUser(t)
		newChallenge(ui, frank)
		waitSample("otpstep_outbox_delivery_failures_total", "class", "dial")
		if v, _ := sample(scrape(t, srv), "otpstep_outbox_depth"); v < 1 {
			t.Fatalf("outbox depth with the mail server down = %v, want at least 1", v)
		}
		ready := readyReport(t, srv, http.StatusOK)
		if ready.Status != "ready" || !ready.Database.OK || ready.Outbox.Depth == nil || *ready.Outbox.Depth < 1 ||
			ready.Outbox.OldestAgeSeconds == nil || ready.Outbox.LastDeliveryAt == nil {
			t.Fatalf("ready with the mail server down: %+v", ready)
		}
		smtpSrv.Up()
		smtpSrv.SetFailing(451)
		newChallenge(ui, srv.NewUser(t))
		waitSample("otpstep_outbox_delivery_failures_total", "class", "rejected")

		// expired: a code past otp.ttl.
		grace := srv.NewUser(t)
		tok, _, code = newChallenge(ui, grace)
		srv.Clock.Advance(srv.Plugin.Provider.Config().OTP.TTL + time.Second)
		verify(tok, code, http.StatusNotFound)

		// Last, as it refuses every login from this IP: the fifth failure
		// fills login.max_failures_per_ip, the next attempt is refused.
		ivan := srv.NewUser(t)
		tryLogin(ivan.Email, "not-"+ivan.Password)
		tryLogin(ivan.Email, ivan.Password)

		m := scrape(t, srv)
		moved := [][]string{
			{"otpstep_otp_codes_issued_total", "channel", "response", "kind", "login"},
			{"otpstep_otp_codes_issued_total", "channel", "mail", "kind", "login"},
			{"otpstep_otp_verifications_total", "outcome", "passed"},
			{"otpstep_otp_verifications_total", "outcome", "wrong"},
			{"otpstep_otp_verifications_total", "outcome", "burned"},
			{"otpstep_otp_verifications_total", "outcome", "locked"},
			{"otpstep_otp_verifications_total", "outcome", "expired"},
			{"otpstep_limit_refusals_total", "limit", "otp.resend_interval"},
			{"otpstep_limit_refusals_total", "limit", "otp.max_sends_per_hour"},
			{"otpstep_limit_refusals_total", "limit", "otp.max_attempts"},
			{"otpstep_limit_refusals_total", "limit", "otp.max_failures_per_user"},
			{"otpstep_limit_refusals_total", "limit", "login.max_failures_per_account"},
			{"otpstep_limit_refusals_total", "limit", "login.max_failures_per_ip"},
			{"otpstep_logins_total", "outcome", "success"},
			{"otpstep_logins_total", "outcome", "wrong_password"},
			{"otpstep_logins_total", "outcome", "unknown_user"},
			{"otpstep_logins_total", "outcome", "disabled"},
			{"otpstep_logins_total", "outcome", "limited"},
			{"otpstep_linked_identity_events_total", "event", "linked"},
			{"otpstep_linked_identity_events_total", "event", "refused"},
			{"otpstep_linked_identity_events_total", "event", "unlinked"},
			{"otpstep_tokens_issued_total", "grant_type", "authorization_code"},
			{"otpstep_tokens_issued_total", "grant_type", "client_credentials"},
			{"otpstep_tokens_issued_total", "grant_type", "refresh_token"},
			{"otpstep_outbox_deliveries_total"},
			{"otpstep_outbox_delivery_latency_seconds_count"},
			{"otpstep_http_requests_total", "code", "200", "method", "GET", "route", "/health/alive"},
		}
		for _, s := range moved {
			v, ok := sample(m, s[0], s[1:]...)
			// Counters start unset (a vector's series appear on first use).
			was, _ := sample(before, s[0], s[1:]...)
			if !ok || v <= was {
				t.Errorf("%v: %v (before %v, present %v)", s, v, was, ok)
			}
		}
		// Gauges read at scrape time: there, and the backlog read worked.
		for _, s := range [][]string{{"otpstep_outbox_depth"}, {"otpstep_outbox_oldest_age_seconds"},
			{"otpstep_outbox_backlog_read_ok"}, {"go_sql_max_open_connections", "db_name", "otpstep"}} {
			if v, ok := sample(m, s[0], s[1:]...); !ok || s[0] == "otpstep_outbox_backlog_read_ok" && v != 1 {
				t.Errorf("%v: %v (present %v)", s, v, ok)
			}
		}
		if dialect == "postgres" {
			if v, ok := sample(m, "otpstep_pgxpool_acquires_total"); !ok || v == 0 {
				t.Errorf("pgx pool acquires: %v %v", v, ok)
			}
		}
		var build bool
		for k, v := range m {
			if strings.HasPrefix(k, "otpstep_build_info{") && strings.Contains(k, `revision="`) && strings.Contains(k, `version="`) && v == 1 {
				build = true
			}
		}
		if !build {
			t.Error("otpstep_build_info{version,revision} 1 missing")
		}
	})
}

type readyJSON struct {
	Status   string `json:"status"`
	Database struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	} `json:"database"`
	Outbox struct {
		Depth            *int       `json:"depth"`
		OldestAgeSeconds *float64   `json:"oldest_age_seconds"`
		LastDeliveryAt   *time.Time `json:"last_delivery_at"`
	} `json:"outbox"`
}

func readyReport(t *testing.T, srv *plugintest.Server, want int) readyJSON {
	t.Helper()
	resp, err := http.Get(srv.AdminURL + "/health/ready")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r readyJSON
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != want {
		t.Fatalf("/health/ready = %d %+v, want %d", resp.StatusCode, r, want)
	}
	return r
}

// pprof is off unless server.admin_pprof, and never on the public listener.
func TestAdminListener_PprofOnlyWithTheFlag(t *testing.T) {
	for _, on := range []bool{false, true} {
		srv := plugintest.Start(t, "sqlite", func(c *plugin.Config) { c.Server.AdminPprof = on })
		want := http.StatusNotFound
		if on {
			want = http.StatusOK
		}
		for base, status := range map[string]int{srv.AdminURL: want, srv.URL: http.StatusNotFound} {
			resp, err := http.Get(base + "/debug/pprof/")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != status {
				t.Errorf("admin_pprof %v: %s/debug/pprof/ = %d, want %d", on, base, resp.StatusCode, status)
			}
		}
	}
}

// Embedded, the host mounts Plugin.AdminHandler on a listener of its own:
// /metrics serves the host's registry with otpstep's series, /health/ready
// the JSON report; the routes Mount adds under the prefix serve neither.
func TestEmbedded_AdminHandlerOnTheHostsOwnListener(t *testing.T) {
	reg := prometheus.NewRegistry()
	hp := &plugintest.HostPlugin{Prefix: "/mfa", Options: func(o *plugin.Options) { o.Registerer, o.Gatherer = reg, reg }}
	h := plugintest.StartHost(t, hp)
	admin := httptest.NewServer(hp.Plugin.AdminHandler())
	t.Cleanup(admin.Close)

	srv := &plugintest.Server{AdminURL: admin.URL}
	if _, ok := sample(scrape(t, srv), "otpstep_outbox_depth"); !ok {
		t.Fatal("otpstep_outbox_depth missing from the host's registry")
	}
	if r := readyReport(t, srv, http.StatusOK); r.Status != "ready" || !r.Database.OK || r.Outbox.Depth == nil {
		t.Fatalf("ready: %+v", r)
	}
	for _, path := range []string{"/mfa/metrics", "/mfa/health/ready"} {
		resp, err := http.Get(h.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("host %s = %d, want 404", path, resp.StatusCode)
		}
	}
}
