package plugin_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/handler/openid"
	fositestorage "github.com/ory/fosite/storage"
	"golang.org/x/oauth2"

	"github.com/otpstep/otpstep/plugin"
	"github.com/otpstep/otpstep/plugin/plugintest"
	"github.com/otpstep/otpstep/provider/config"
)

// A pushed authorization request (RFC 9126) goes through
// RequireSecondFactor: fosite consumes its request_uri when it parses it,
// so the host answers with the request the plugin parsed, and the host's
// login and the OTP page resume it by its parameters.
func TestEmbedded_PushedAuthorizeRequestReachesAAL2(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		hp := &plugintest.HostPlugin{Prefix: "/mfa", Store: plugintest.NewStore(t, dialect)}
		h := plugintest.StartHost(t, hp)
		u := h.NewUser(t)
		conf := h.ClientConf(hp, plugintest.HostRP, "openid", "email")
		b := plugintest.NewBrowser(t)

		verifier := oauth2.GenerateVerifier()
		page := b.Follow(h.PushAuthorize(t, hp, conf, verifier), plugintest.RedirectURI)
		if page.URL.Path != hp.LoginPath {
			t.Fatalf("want the host's login, got %s (steps %v)", page, b.Steps)
		}
		returnTo := page.HiddenField("return_to")
		if strings.Contains(returnTo, "request_uri") || strings.Contains(returnTo, "client_secret") || !strings.Contains(returnTo, "code_challenge=") {
			t.Fatalf("return_to %q: want the pushed parameters, without request_uri or client authentication", returnTo)
		}
		page = b.Submit(page, hp.LoginPath, map[string][]string{"email": {u.Email}, "password": {u.Password}, "return_to": {returnTo}}, plugintest.RedirectURI)
		page = passOTPPage(t, b, hp, page, 1, u)
		tok := h.Exchange(t, conf, page, verifier)
		requireAAL2(t, tok, u)

		// Signed in past the second factor: a pushed request is answered
		// at once, with the request RequireSecondFactor parsed.
		verifier = oauth2.GenerateVerifier()
		page = b.Follow(h.PushAuthorize(t, hp, conf, verifier), plugintest.RedirectURI)
		requireAAL2(t, h.Exchange(t, conf, page, verifier), u)

		// A request_uri already used is answered by the host's fosite.
		used := h.PushAuthorize(t, hp, conf, verifier)
		_ = b.Follow(used, plugintest.RedirectURI)
		page = b.Follow(used, plugintest.RedirectURI)
		if page.Status != http.StatusBadRequest || !strings.Contains(page.Body, `"invalid_request_uri"`) {
			t.Fatalf("a reused request_uri: %s, want 400 invalid_request_uri", page)
		}
	})
}

// A host on net/http's ServeMux (no gorilla/mux in it) serves the plugin
// through Handler: the whole login to aal2, and the user API under the
// prefix.
func TestEmbedded_ServeMuxHostWithHandler(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		hp := &plugintest.HostPlugin{Prefix: "/mfa", Store: plugintest.NewStore(t, dialect)}
		h := plugintest.StartServeMuxHost(t, hp)
		if h.Router != nil {
			t.Fatal("the ServeMux host has a gorilla/mux router")
		}
		u := h.NewUser(t)
		conf := h.ClientConf(hp, plugintest.HostRP, "openid", "email")
		b := plugintest.NewBrowser(t)
		verifier := oauth2.GenerateVerifier()
		page := h.HostLogin(t, b, hp, conf, u, verifier)
		page = passOTPPage(t, b, hp, page, 1, u)
		requireAAL2(t, h.Exchange(t, conf, page, verifier), u)

		// The login UI drives the user API under /mfa.
		ui := h.ClientConf(hp, plugintest.HostLoginUI, "openid", "user:otp:verify")
		page = h.HostLogin(t, plugintest.NewBrowser(t), hp, ui, u, verifier)
		uiTok := h.Exchange(t, ui, page, verifier)
		status, body := hostAPI(t, h, hp, http.MethodPost, "/user/otp/verify", uiTok.AccessToken, map[string]any{"otp": "000000", "types": []string{"login"}})
		if status != http.StatusNotFound {
			t.Fatalf("verify a wrong code: %d %v, want 404", status, body)
		}
		// Unknown paths under the prefix are the plugin's to answer.
		resp, err := http.Get(h.URL + "/mfa/no-such-page")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("/mfa/no-such-page: %d", resp.StatusCode)
		}
	})
}

func TestHandler_RefusesAPrefixThatIsNotAPlainPath(t *testing.T) {
	hp := &plugintest.HostPlugin{Prefix: "/mfa"}
	plugintest.StartHost(t, hp)
	for _, prefix := range []string{"mfa", "/mfa/", "/{x}"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Handler(%q) did not panic", prefix)
				}
			}()
			hp.Plugin.Handler(prefix)
		}()
	}
}

// Claims.Apply sets the session's own subject (what introspection and so
// the user API read), not only the ID token's.
func TestClaimsApply_SetsTheSessionsSubject(t *testing.T) {
	c := plugin.Claims{SessionID: "sid-1", Subject: uuid.NewString(), ACR: "aal2", AMR: []string{"pwd", "otp"}}
	s := &openid.DefaultSession{}
	c.Apply(s)
	if s.GetSubject() != c.Subject || s.Claims.Subject != c.Subject || s.Claims.Extra["sid"] != "sid-1" || s.Claims.AuthenticationContextClassReference != "aal2" {
		t.Fatalf("session subject %q, ID token subject %q, claims %+v", s.GetSubject(), s.Claims.Subject, s.Claims)
	}
}

// A host token with a sid and no subject gets a 401 saying so, not
// "unknown or disabled" (the answer for a subject otpstep does not know).
func TestEmbedded_UserAPITellsATokenWithoutSubjectFromAnUnknownUser(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		store := plugintest.NewStore(t, dialect)
		for _, tc := range []struct {
			name   string
			adjust func(*openid.DefaultSession)
			detail string
		}{
			{"no subject", func(s *openid.DefaultSession) { s.Subject = "" }, "The access token has no subject."},
			{"unknown subject", func(s *openid.DefaultSession) { s.Subject = uuid.NewString() }, "The access token's user is unknown or disabled."},
		} {
			t.Run(tc.name, func(t *testing.T) {
				hp := &plugintest.HostPlugin{Prefix: "/mfa", Store: store, AdjustSession: tc.adjust}
				h := plugintest.StartHost(t, hp)
				u := h.NewUser(t)
				ui := h.ClientConf(hp, plugintest.HostLoginUI, "openid", "user:otp:verify")
				verifier := oauth2.GenerateVerifier()
				page := h.HostLogin(t, plugintest.NewBrowser(t), hp, ui, u, verifier)
				tok := h.Exchange(t, ui, page, verifier)
				status, body := hostAPI(t, h, hp, http.MethodPost, "/user/otp/verify", tok.AccessToken, map[string]any{"otp": "000000", "types": []string{"login"}})
				if status != http.StatusUnauthorized || !strings.Contains(firstErrorDetail(body), tc.detail) {
					t.Fatalf("%d %v, want 401 %q", status, body, tc.detail)
				}
			})
		}
	})
}

func firstErrorDetail(body map[string]any) string {
	errs, _ := body["errors"].([]any)
	if len(errs) == 0 {
		return ""
	}
	e, _ := errs[0].(map[string]any)
	d, _ := e["detail"].(string)
	return d
}

// BeginLogin and SyncUser refuse a user id that is not a uuid at once,
// rather than a session PUT /sessions would refuse later.
func TestBeginLogin_RefusesAUserIDThatIsNotAUUID(t *testing.T) {
	hp := &plugintest.HostPlugin{Prefix: "/mfa"}
	plugintest.StartHost(t, hp)
	ctx := context.Background()
	for _, id := range []string{"peter", "", "7B0F6A55-3B8E-4A43-9A1B-0C2F5D3E9A0", "urn:uuid:7b0f6a55-3b8e-4a43-9a1b-0c2f5d3e9a01"} {
		if _, err := hp.Plugin.BeginLogin(ctx, nil, nil, plugin.User{ID: id, Email: "peter@example.com"}); !errors.Is(err, plugin.ErrInvalidUserID) || !strings.Contains(err.Error(), "uuid") {
			t.Errorf("BeginLogin(%q): %v, want ErrInvalidUserID", id, err)
		}
		if err := hp.Plugin.SyncUser(ctx, plugin.User{ID: id, Email: "peter@example.com"}); !errors.Is(err, plugin.ErrInvalidUserID) {
			t.Errorf("SyncUser(%q): %v, want ErrInvalidUserID", id, err)
		}
	}
	if _, err := hp.Plugin.BeginLogin(ctx, nil, nil, plugin.User{ID: uuid.NewString(), Email: "peter@example.com"}); err != nil {
		t.Fatalf("a uuid: %v", err)
	}
}

// Embedded, server.public_url is the host's URL: left at otpstep's
// standalone default it is refused, naming the key; and errors about the
// dev relaxations name Options.Dev, not otpstep serve's --dev.
func TestNew_EmbeddedNeedsPublicURLAndNamesOptionsDev(t *testing.T) {
	host := compose.ComposeAllEnabled(&fosite.Config{GlobalSecret: []byte(strings.Repeat("k", 32))}, fositestorage.NewMemoryStore(), nil)
	opts := func() plugin.Options {
		cfg := plugin.DefaultConfig()
		cfg.Secrets.System = strings.Repeat("s", 32)
		cfg.Database.DSN = "sqlite://" + filepath.Join(t.TempDir(), "x.db")
		return plugin.Options{Config: cfg, OAuth2: host, Mailer: plugintest.NewMailbox()}
	}
	o := opts()
	_, err := plugin.New(context.Background(), o)
	var keyErr *config.KeyError
	if !errors.As(err, &keyErr) || keyErr.Key != "server.public_url" || !strings.Contains(err.Error(), "embedded") {
		t.Fatalf("default public_url embedded: %v, want a server.public_url error", err)
	}
	for name, change := range map[string]func(*plugin.Options){
		"plain http": func(o *plugin.Options) { o.Config.Server.PublicURL = "http://host.example.com" },
		"log mailer": func(o *plugin.Options) {
			o.Config.Server.PublicURL = "https://host.example.com"
			o.Mailer = nil
			o.Config.Mail.Driver = "log"
		},
	} {
		o := opts()
		change(&o)
		_, err := plugin.New(context.Background(), o)
		if err == nil || !strings.Contains(err.Error(), "Options.Dev") || strings.Contains(err.Error(), "--dev") {
			t.Errorf("%s: %v, want it to name Options.Dev", name, err)
		}
	}
	// Standalone keeps naming otpstep serve's flag.
	o = opts()
	o.OAuth2 = nil
	o.Config.Server.PublicURL = "http://host.example.com"
	if _, err := plugin.New(context.Background(), o); err == nil || !strings.Contains(err.Error(), "--dev") {
		t.Fatalf("standalone: %v, want it to name --dev", err)
	}
	o = opts()
	o.Config.Server.PublicURL = "https://host.example.com"
	p, err := plugin.New(context.Background(), o)
	if err != nil {
		t.Fatalf("with the host's URL: %v", err)
	}
	_ = p.Close()
}

// Handler keeps Mount's answers to unclean paths (its router skips mux's
// cleaning): served by a host that hands it every path under the prefix
// as written, otpstep answers them with its headers.
func TestCleanedPaths_Handler(t *testing.T) {
	host := compose.ComposeAllEnabled(&fosite.Config{GlobalSecret: []byte(strings.Repeat("k", 32))}, fositestorage.NewMemoryStore(), nil)
	cfg := plugin.DefaultConfig()
	cfg.Server.PublicURL = "https://host.example.com"
	cfg.Secrets.System = strings.Repeat("s", 32)
	p, err := plugin.New(context.Background(), plugin.Options{Config: cfg, Store: plugintest.NewStore(t, "sqlite"), OAuth2: host, Mailer: plugintest.NewMailbox()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	srv := httptest.NewServer(p.Handler("/mfa"))
	t.Cleanup(srv.Close)
	for _, path := range []string{"/mfa//user/2024-3/sessions/" + uuid.NewString(), "/mfa/user/2024-3/./nope"} {
		r := sendUnclean(t, http.MethodPut, srv.URL, path)
		requireJSONAPI404(t, path, r)
		requireOTPStepHeaders(t, path, r)
	}
	r := sendUnclean(t, http.MethodGet, srv.URL, "/mfa/login/./otp")
	if r.status != http.StatusMovedPermanently || r.header.Get("Location") != "/mfa/login/otp" {
		t.Fatalf("/mfa/login/./otp: %d Location %q", r.status, r.header.Get("Location"))
	}
	requireOTPStepHeaders(t, "/mfa/login/./otp", r)
}
