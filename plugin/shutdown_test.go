package plugin_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/mux"

	"github.com/otpstep/otpstep/plugin"
	"github.com/otpstep/otpstep/plugin/plugintest"
	"github.com/otpstep/otpstep/provider/config"
	"github.com/otpstep/otpstep/provider/mail/mailtest"
)

// startForShutdown serves a plugin on a fresh database of the dialect,
// mailing through smtpSrv, with server.shutdown_grace at grace. Its
// background work is not started, so mail waits in the outbox until
// Shutdown's last pass.
func startForShutdown(t *testing.T, dialect string, smtpSrv *mailtest.Server, grace time.Duration) *plugintest.Server {
	t.Helper()
	store := plugintest.NewStore(t, dialect)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := plugin.DefaultConfig()
	cfg.Server.Listen = ln.Addr().String()
	cfg.Server.PublicURL = "http://" + ln.Addr().String()
	cfg.Server.ShutdownGrace = grace
	cfg.Secrets.System = strings.Repeat("test-secret-", 4)
	cfg.Database.MigrateOnStart = false
	cfg.Database.PurgeInterval = 0
	cfg.Mail.Driver, cfg.Mail.SMTPURL, cfg.Mail.TLS = "smtp", smtpSrv.URL(), "none"
	p, err := plugin.New(context.Background(), plugin.Options{Config: cfg, Store: store})
	if err != nil {
		t.Fatal(err)
	}
	r := mux.NewRouter()
	p.Mount(r)
	srv := httptest.NewUnstartedServer(r)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	admin := httptest.NewServer(p.AdminHandler())
	t.Cleanup(func() {
		srv.Close()
		admin.Close()
		_ = p.Close()
	})
	return &plugintest.Server{URL: cfg.Server.PublicURL, Plugin: p, Store: p.Store(), HTTP: srv, Admin: admin, AdminURL: admin.URL}
}

// During server.shutdown_grace readiness answers 503 with Retry-After
// while the same server still answers every other request, 200 and with
// Connection: close; the user API still issues codes.
func TestShutdown_ReadinessIs503DuringTheGraceWhileRequestsSucceed(t *testing.T) {
	for _, dialect := range plugintest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			smtpSrv := mailtest.StartServer(t)
			srv := startForShutdown(t, dialect, smtpSrv, config.MaxShutdownGrace)
			client := srv.NewClient(t, false, allUserScopes...)
			alice := srv.NewUser(t)
			login := srv.LoginWithPassword(t, client, alice)
			api := newAPIClient(t, srv)
			getFrom := func(base, path string) *http.Response {
				t.Helper()
				resp, err := http.Get(base + path)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				return resp
			}
			get := func(path string) *http.Response { t.Helper(); return getFrom(srv.URL, path) }
			if resp := getFrom(srv.AdminURL, "/health/ready"); resp.StatusCode != http.StatusOK || resp.Close {
				t.Fatalf("before the shutdown: ready %d, Connection: close %v", resp.StatusCode, resp.Close)
			}

			ctx, endGrace := context.WithCancel(context.Background())
			defer endGrace()
			done := make(chan error, 1)
			go func() { done <- srv.Plugin.Shutdown(ctx, srv.HTTP.Config) }()
			for deadline := time.Now().Add(10 * time.Second); !srv.Plugin.Draining(); time.Sleep(5 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("Shutdown did not start draining")
				}
			}
			ready := getFrom(srv.AdminURL, "/health/ready")
			if ready.StatusCode != http.StatusServiceUnavailable || ready.Header.Get("Retry-After") == "" {
				t.Fatalf("ready during the grace: %d, Retry-After %q; want 503 with Retry-After", ready.StatusCode, ready.Header.Get("Retry-After"))
			}
			for _, path := range []string{"/health/alive", "/.well-known/openid-configuration", "/.well-known/jwks.json"} {
				if resp := get(path); resp.StatusCode != http.StatusOK || !resp.Close {
					t.Fatalf("%s during the grace: %d, Connection: close %v; want 200 with it", path, resp.StatusCode, resp.Close)
				}
			}
			if r := api.putSession(login.Token.AccessToken, login.SID, alice.ID, false); r.Status != http.StatusOK {
				t.Fatalf("PUT /sessions during the grace: %d %s", r.Status, r.Body)
			}
			select {
			case err := <-done:
				t.Fatalf("Shutdown returned during the grace: %v", err)
			default:
			}
			endGrace()
			if err := <-done; err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
			if _, err := http.Get(srv.URL + "/health/alive"); err == nil {
				t.Fatal("the listener still accepts after Shutdown")
			}
		})
	}
}

// Shutdown's last pass sends the mail queued by requests it drained: here
// the dispatcher never ran, so only that pass can have sent it.
func TestShutdown_LastOutboxPassSendsQueuedMail(t *testing.T) {
	for _, dialect := range plugintest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			smtpSrv := mailtest.StartServer(t)
			srv := startForShutdown(t, dialect, smtpSrv, 0)
			client := srv.NewLoginUI(t, allUserScopes...)
			alice := srv.NewUser(t)
			login := srv.LoginWithPassword(t, client, alice)
			r := newAPIClient(t, srv).putSession(login.Token.AccessToken, login.SID, alice.ID, false)
			if r.Status != http.StatusOK {
				t.Fatalf("PUT /sessions: %d %s", r.Status, r.Body)
			}
			code, _ := r.json(t)["otp"].(string)
			if n := len(smtpSrv.Messages()); n != 0 {
				t.Fatalf("%d messages sent before Shutdown; the dispatcher was not started", n)
			}
			if err := srv.Plugin.Shutdown(context.Background(), srv.HTTP.Config); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
			msgs := smtpSrv.Messages()
			if len(msgs) != 1 || len(msgs[0].To) != 1 || msgs[0].To[0] != alice.Email || code == "" || !strings.Contains(msgs[0].Text, code) {
				t.Fatalf("after Shutdown: %d messages, want one to %s with the code", len(msgs), alice.Email)
			}
			if err := srv.Plugin.Start(context.Background()); err == nil {
				t.Fatal("Start after Shutdown succeeded")
			}
		})
	}
}
