package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/otpstep/otpstep/plugin/plugintest"
)

// startExample runs the example host on loopback with a mailbox for the codes.
func startExample(t *testing.T) (string, *plugintest.Mailbox) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	mailbox := plugintest.NewMailbox()
	h, err := NewHost(context.Background(), HostConfig{
		PublicURL: base, DBPath: filepath.Join(t.TempDir(), "host.db"),
		Secret: strings.Repeat("example-secret-", 3), Mailer: mailbox, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Plugin.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h.Handler)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		if err := h.Close(); err != nil {
			t.Error(err)
		}
	})
	return base, mailbox
}

func exchange(t *testing.T, base, client string, page *plugintest.Page) *oauth2.Token {
	t.Helper()
	code := page.URL.Query().Get("code")
	if code == "" {
		t.Fatalf("no code: %s", page)
	}
	conf := oauth2.Config{ClientID: client, ClientSecret: ClientSecret, RedirectURL: base + "/callback",
		Endpoint: oauth2.Endpoint{TokenURL: base + "/oauth2/token", AuthStyle: oauth2.AuthStyleInHeader}}
	tok, err := conf.Exchange(context.Background(), code, oauth2.VerifierOption(PKCEVerifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	return tok
}

func amrOf(t *testing.T, tok *oauth2.Token) []string {
	t.Helper()
	var amr []string
	if err := json.Unmarshal([]byte(plugintest.IDTokenClaim(t, tok, "amr")), &amr); err != nil {
		t.Fatal(err)
	}
	return amr
}

// logIn follows an authorize URL to the host's login form and signs alice in.
func logIn(t *testing.T, b *plugintest.Browser, base, authURL string) *plugintest.Page {
	t.Helper()
	page := b.Follow(authURL, base+"/callback")
	if page.URL.Path != "/login" {
		t.Fatalf("want the host's login form, got %s", page)
	}
	return b.Submit(page, "/login", url.Values{"email": {"alice@example.com"}, "password": {"alice-password"}, "return_to": {page.HiddenField("return_to")}}, base+"/callback")
}

func api(t *testing.T, base, method, path, token string, body any) (int, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, base+MFAPrefix+"/user/2024-3"+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return resp.StatusCode, m
}

// TestExample_SecondFactorThroughThePluginsPage: log in on the host, type
// the mailed code on the plugin's page, and the host issues aal2 tokens.
func TestExample_SecondFactorThroughThePluginsPage(t *testing.T) {
	base, mailbox := startExample(t)
	b := plugintest.NewBrowser(t)
	page := logIn(t, b, base, AuthorizeURL(base, ClientRP, "openid email"))
	if page.Status != http.StatusOK || page.URL.Path != MFAPrefix+"/login/otp" {
		t.Fatalf("want the plugin's OTP page, got %s", page)
	}
	code := mailbox.Code(t, 1, "alice@example.com")
	page = b.Submit(page, MFAPrefix+"/login/otp", url.Values{"otp": {code}, "return_to": {page.HiddenField("return_to")}}, base+"/callback")
	tok := exchange(t, base, ClientRP, page)
	if amr := amrOf(t, tok); !slices.Equal(amr, []string{"pwd", "otp"}) {
		t.Fatalf("amr = %v", amr)
	}
	if acr := plugintest.IDTokenClaim(t, tok, "acr"); acr != "aal2" {
		t.Fatalf("acr = %q", acr)
	}
	if sub := plugintest.IDTokenClaim(t, tok, "sub"); sub != "7b0f6a55-3b8e-4a43-9a1b-0c2f5d3e9a01" {
		t.Fatalf("sub = %q, want the host's user id", sub)
	}
}

// TestExample_SecondFactorThroughTheAPI: the login UI gets aal1 tokens from
// the host, passes the session through the plugin's user API, and the next
// authorize request of the relying party issues tokens with otp in amr.
func TestExample_SecondFactorThroughTheAPI(t *testing.T) {
	base, mailbox := startExample(t)
	b := plugintest.NewBrowser(t)
	page := logIn(t, b, base, AuthorizeURL(base, ClientLoginUI, "openid user:sessions:update user:otp:verify"))
	uiTok := exchange(t, base, ClientLoginUI, page)
	if amr := amrOf(t, uiTok); !slices.Equal(amr, []string{"pwd"}) {
		t.Fatalf("login UI token amr = %v", amr)
	}
	sid := plugintest.IDTokenClaim(t, uiTok, "sid")

	status, body := api(t, base, http.MethodPut, "/sessions/"+sid, uiTok.AccessToken,
		map[string]any{"userId": "7b0f6a55-3b8e-4a43-9a1b-0c2f5d3e9a01", "passedLoginOTP": false})
	if status != http.StatusOK {
		t.Fatalf("PUT /sessions: %d %v", status, body)
	}
	code, _ := body["otp"].(string)
	if mailed := mailbox.Code(t, 1, "alice@example.com"); mailed != code {
		t.Fatalf("mailed %q, answered %q", mailed, code)
	}
	if status, body = api(t, base, http.MethodPost, "/user/otp/verify", uiTok.AccessToken,
		map[string]any{"otp": code, "types": []string{"login"}}); status != http.StatusNoContent {
		t.Fatalf("verify: %d %v", status, body)
	}

	page = b.Follow(AuthorizeURL(base, ClientRP, "openid")+"&prompt=none", base+"/callback")
	tok := exchange(t, base, ClientRP, page)
	if amr := amrOf(t, tok); !slices.Contains(amr, "otp") {
		t.Fatalf("amr = %v, want otp in it", amr)
	}
	if got := plugintest.IDTokenClaim(t, tok, "sid"); got != sid {
		t.Fatalf("sid = %q, want the login UI's session %q", got, sid)
	}
}

// cancelOnWrite ends the run as soon as it prints its banner.
type cancelOnWrite struct {
	cancel context.CancelFunc
	buf    bytes.Buffer
}

func (w *cancelOnWrite) Write(p []byte) (int, error) {
	w.cancel()
	return w.buf.Write(p)
}

// TestRun_StartsAndStops runs main's body: the host starts (database,
// migrations, dispatcher), prints how to try it, and shuts down cleanly
// when ctx ends.
func TestRun_StartsAndStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	out := &cancelOnWrite{cancel: cancel}
	if err := run(ctx, "127.0.0.1:0", filepath.Join(t.TempDir(), "run.db"), out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.buf.String(), "/oauth2/auth?client_id=example-rp") {
		t.Fatalf("banner without the authorize URL:\n%s", out.buf.String())
	}
}
