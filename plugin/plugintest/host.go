package plugintest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/mux"
	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/handler/openid"
	fositestorage "github.com/ory/fosite/storage"
	"github.com/ory/fosite/token/jwt"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/oauth2"

	"github.com/otpstep/otpstep/plugin"
	"github.com/otpstep/otpstep/storage"
)

// Host clients: HostRP needs the second factor, HostLoginUI drives it
// through the user API. Both use HostClientSecret and RedirectURI.
const (
	HostRP           = "rp"
	HostLoginUI      = "login-ui"
	HostClientSecret = "host-secret-0123456789"
)

// HostSIDCookie is the host's own cookie holding the sid BeginLogin
// returned for this plugin.
func (hp *HostPlugin) HostSIDCookie() string {
	return "host_sid" + strings.ReplaceAll(hp.Prefix, "/", "_")
}

// HostPlugin is one plugin a Host embeds, and, once the host started, the
// plugin and its mailbox.
type HostPlugin struct {
	// Prefix is where the plugin is mounted ("/mfa").
	Prefix string
	// AuthorizePath is the host's authorize endpoint this plugin guards;
	// "" is /oauth2/auth.
	AuthorizePath string
	// Store is the plugin's database; nil is a fresh SQLite store.
	Store *storage.Store
	// FunctionForm makes the host's authorize handler call CheckAuthorize
	// itself instead of being wrapped in RequireSecondFactor.
	FunctionForm bool
	// NoStart leaves the plugin not started (no mail is delivered).
	NoStart bool
	// Options adjusts the plugin's options before New.
	Options func(*plugin.Options)
	// AdjustSession changes the session the host issues tokens with, after
	// Claims.Apply.
	AdjustSession func(*openid.DefaultSession)

	Plugin *plugin.Plugin
	Mail   *Mailbox
	// LoginPath is the host's login form for this plugin ("/login" + Prefix).
	LoginPath string
}

// HostUser is an account of the host.
type HostUser struct {
	ID, Email, Password string
}

// Host is a minimal third-party fosite server embedding plugins, as a team
// would write it: its own compose.Compose over fosite's MemoryStore (with
// pushed authorization requests at /oauth2/par), its own users and login
// form, the plugins mounted under their prefixes and guarding its authorize
// endpoints.
type Host struct {
	URL    string
	OAuth2 fosite.OAuth2Provider
	// Router is the host's gorilla/mux router (StartHost); nil on a
	// ServeMux host (StartServeMuxHost).
	Router  *mux.Router
	Plugins []*HostPlugin
	Users   map[string]HostUser // by email
}

// StartHost starts a host on loopback with the given plugins, routing with
// gorilla/mux (the plugins Mount on its subrouters).
func StartHost(t *testing.T, plugins ...*HostPlugin) *Host {
	t.Helper()
	return startHost(t, false, plugins)
}

// StartServeMuxHost starts a host on loopback with the given plugins,
// routing with net/http's ServeMux (the plugins serve through Handler).
func StartServeMuxHost(t *testing.T, plugins ...*HostPlugin) *Host {
	t.Helper()
	return startHost(t, true, plugins)
}

func startHost(t *testing.T, serveMux bool, plugins []*HostPlugin) *Host {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	h := &Host{URL: "http://" + srv.Listener.Addr().String(), Users: map[string]HostUser{}, Plugins: plugins}
	var sm *http.ServeMux
	if serveMux {
		sm = http.NewServeMux()
	} else {
		// SkipClean: otpstep answers unclean paths under its prefix itself (see
		// web.Server.MountSecondFactor); mux's cleaning would answer a bare 301.
		h.Router = mux.NewRouter().SkipClean(true)
	}

	store := fositestorage.NewMemoryStore()
	secret, err := bcrypt.GenerateFromPassword([]byte(HostClientSecret), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	for id, scopes := range map[string][]string{
		HostRP: {"openid", "offline_access", "email"},
		HostLoginUI: {"openid", "user:sessions:update", "user:otp:verify", "user:otp:create",
			"user:users.pin:check", "user:users.pin:update", "user:users.password:check"},
	} {
		store.Clients[id] = &fosite.DefaultClient{ID: id, Secret: secret, RedirectURIs: []string{RedirectURI},
			ResponseTypes: []string{"code"}, GrantTypes: []string{"authorization_code", "refresh_token"}, Scopes: scopes}
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	keyGetter := func(context.Context) (interface{}, error) { return key, nil }
	cfg := &fosite.Config{
		AccessTokenLifespan: time.Hour, AuthorizeCodeLifespan: 10 * time.Minute, IDTokenLifespan: time.Hour,
		IDTokenIssuer: h.URL, AccessTokenIssuer: h.URL, TokenURL: h.URL + "/oauth2/token",
		GlobalSecret: []byte("host-global-secret-0123456789abcdef"), ScopeStrategy: fosite.ExactScopeStrategy,
		EnforcePKCE: true,
	}
	h.OAuth2 = compose.Compose(cfg, store, &compose.CommonStrategy{
		CoreStrategy:               compose.NewOAuth2HMACStrategy(cfg),
		OpenIDConnectTokenStrategy: compose.NewOpenIDConnectStrategy(keyGetter, cfg),
		Signer:                     &jwt.DefaultSigner{GetPrivateKey: keyGetter},
	},
		compose.OAuth2AuthorizeExplicitFactory, compose.OAuth2PKCEFactory, compose.OAuth2RefreshTokenGrantFactory,
		compose.OpenIDConnectExplicitFactory, compose.OAuth2TokenIntrospectionFactory,
		compose.PushedAuthorizeHandlerFactory,
	)

	for i, hp := range plugins {
		if hp.AuthorizePath == "" {
			hp.AuthorizePath = "/oauth2/auth"
		}
		if hp.Store == nil {
			hp.Store = NewStore(t, "sqlite")
		}
		hp.Mail = NewMailbox()
		hp.LoginPath = "/login" + hp.Prefix
		cfg := plugin.DefaultConfig()
		cfg.Server.PublicURL = h.URL
		cfg.Secrets.System = strings.Repeat("embedded-secret-", 3)
		cfg.Database.MigrateOnStart = false
		cfg.Login.CookieName = "otpstep_" + strings.Trim(strings.ReplaceAll(hp.Prefix, "/", "_"), "_")
		if hp.Prefix == "" {
			cfg.Login.CookieName = "otpstep_root"
		}
		opts := plugin.Options{
			Config: cfg, Store: hp.Store, OAuth2: h.OAuth2, Mailer: hp.Mail,
			AuthorizePaths: []string{hp.AuthorizePath},
			SecondFactorRequired: func(ar fosite.AuthorizeRequester) bool {
				return ar.GetClient().GetID() != HostLoginUI
			},
			LoginUIClient: func(c fosite.Client) bool { return c.GetID() == HostLoginUI },
		}
		if hp.Options != nil {
			hp.Options(&opts)
		}
		p, err := plugin.New(context.Background(), opts)
		if err != nil {
			t.Fatalf("plugin %d: %v", i, err)
		}
		hp.Plugin = p
		t.Cleanup(func() { _ = p.Close() })
		if serveMux {
			sm.Handle(hp.Prefix+"/", p.Handler(hp.Prefix))
			sm.Handle("GET "+hp.AuthorizePath, h.authorizeHandler(hp))
			sm.HandleFunc("GET "+hp.LoginPath, h.loginForm)
			sm.HandleFunc("POST "+hp.LoginPath, h.login(hp))
		} else {
			sub := h.Router
			if hp.Prefix != "" {
				sub = h.Router.PathPrefix(hp.Prefix).Subrouter()
			}
			p.Mount(sub)
			h.Router.Handle(hp.AuthorizePath, h.authorizeHandler(hp)).Methods(http.MethodGet)
			h.Router.HandleFunc(hp.LoginPath, h.loginForm).Methods(http.MethodGet)
			h.Router.HandleFunc(hp.LoginPath, h.login(hp)).Methods(http.MethodPost)
		}
		if !hp.NoStart {
			if err := p.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
	}
	ping := func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("pong")) }
	if serveMux {
		sm.HandleFunc("POST /oauth2/token", h.token)
		sm.HandleFunc("POST /oauth2/par", h.par)
		sm.HandleFunc("/host/ping", ping)
		srv.Config.Handler = sm
	} else {
		h.Router.HandleFunc("/oauth2/token", h.token).Methods(http.MethodPost)
		h.Router.HandleFunc("/oauth2/par", h.par).Methods(http.MethodPost)
		h.Router.HandleFunc("/host/ping", ping)
		h.Router.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "host: no such page", http.StatusNotFound)
		})
		srv.Config.Handler = h.Router
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return h
}

// NewUser adds an account to the host (a uuid id, a random email).
func (h *Host) NewUser(t *testing.T) HostUser {
	t.Helper()
	u := HostUser{ID: uuid.NewString(), Email: "host-" + RandomString(8) + "@example.com", Password: "host password"}
	h.Users[u.Email] = u
	return u
}

// ClientConf is the oauth2 configuration of a host client going through
// the authorize endpoint of hp.
func (h *Host) ClientConf(hp *HostPlugin, clientID string, scopes ...string) oauth2.Config {
	return oauth2.Config{
		ClientID: clientID, ClientSecret: HostClientSecret, RedirectURL: RedirectURI, Scopes: scopes,
		Endpoint: oauth2.Endpoint{AuthURL: h.URL + hp.AuthorizePath, TokenURL: h.URL + "/oauth2/token", AuthStyle: oauth2.AuthStyleInHeader},
	}
}

func (h *Host) authorizeHandler(hp *HostPlugin) http.Handler {
	if hp.FunctionForm {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx := r.Context()
			ar, err := h.OAuth2.NewAuthorizeRequest(ctx, r)
			if err != nil {
				h.OAuth2.WriteAuthorizeError(ctx, w, ar, err)
				return
			}
			claims, err := hp.Plugin.CheckAuthorize(w, r, ar)
			var rfc *fosite.RFC6749Error
			switch {
			case err == nil:
				h.issue(w, r, hp, ar, claims)
			case errors.Is(err, plugin.ErrNoLogin):
				h.toLogin(w, r, hp, ar)
			case errors.Is(err, plugin.ErrSecondFactorPending):
			case errors.As(err, &rfc):
				h.OAuth2.WriteAuthorizeError(ctx, w, ar, err)
			default:
				http.Error(w, err.Error(), http.StatusInternalServerError)
			}
		})
	}
	return hp.Plugin.RequireSecondFactor(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		// Parsed once, by RequireSecondFactor: a pushed request's
		// request_uri is consumed by then.
		ar, ok := hp.Plugin.AuthorizeRequestFrom(ctx)
		if !ok {
			http.Error(w, "host: not behind RequireSecondFactor", http.StatusInternalServerError)
			return
		}
		claims, ok := hp.Plugin.ClaimsFrom(ctx)
		if !ok {
			h.toLogin(w, r, hp, ar)
			return
		}
		h.issue(w, r, hp, ar, claims)
	}))
}

func (h *Host) toLogin(w http.ResponseWriter, r *http.Request, hp *HostPlugin, ar fosite.AuthorizeRequester) {
	if ar.GetRequestForm().Get("prompt") == "none" {
		h.OAuth2.WriteAuthorizeError(r.Context(), w, ar, fosite.ErrLoginRequired)
		return
	}
	http.Redirect(w, r, hp.LoginPath+"?"+url.Values{"return_to": {plugin.ResumeAuthorizeURI(r, ar)}}.Encode(), http.StatusSeeOther)
}

// issue answers the authorize request with the login session's claims.
func (h *Host) issue(w http.ResponseWriter, r *http.Request, hp *HostPlugin, ar fosite.AuthorizeRequester, claims *plugin.Claims) {
	ctx := r.Context()
	for _, s := range ar.GetRequestedScopes() {
		ar.GrantScope(s)
	}
	// The subject comes from Claims.Apply (the session's and the ID token's).
	session := &openid.DefaultSession{
		Claims:  &jwt.IDTokenClaims{Issuer: h.URL, RequestedAt: time.Now().UTC()},
		Headers: &jwt.Headers{},
	}
	claims.Apply(session)
	if hp.AdjustSession != nil {
		hp.AdjustSession(session)
	}
	resp, err := h.OAuth2.NewAuthorizeResponse(ctx, ar, session)
	if err != nil {
		h.OAuth2.WriteAuthorizeError(ctx, w, ar, err)
		return
	}
	h.OAuth2.WriteAuthorizeResponse(ctx, w, ar, resp)
}

func (h *Host) token(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ar, err := h.OAuth2.NewAccessRequest(ctx, r, &openid.DefaultSession{})
	if err != nil {
		h.OAuth2.WriteAccessError(ctx, w, ar, err)
		return
	}
	resp, err := h.OAuth2.NewAccessResponse(ctx, ar)
	if err != nil {
		h.OAuth2.WriteAccessError(ctx, w, ar, err)
		return
	}
	h.OAuth2.WriteAccessResponse(ctx, w, ar, resp)
}

// par is the host's pushed authorization request endpoint (RFC 9126).
func (h *Host) par(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ar, err := h.OAuth2.NewPushedAuthorizeRequest(ctx, r)
	if err != nil {
		h.OAuth2.WritePushedAuthorizeError(ctx, w, ar, err)
		return
	}
	resp, err := h.OAuth2.NewPushedAuthorizeResponse(ctx, ar, &openid.DefaultSession{})
	if err != nil {
		h.OAuth2.WritePushedAuthorizeError(ctx, w, ar, err)
		return
	}
	h.OAuth2.WritePushedAuthorizeResponse(ctx, w, ar, resp)
}

// PushAuthorize pushes a code flow's authorize request for conf to the
// host's PAR endpoint (authenticating with the client secret) and returns
// the authorize URL that names it by its request_uri.
func (h *Host) PushAuthorize(t *testing.T, hp *HostPlugin, conf oauth2.Config, verifier string, extra ...oauth2.AuthCodeOption) string {
	t.Helper()
	opts := append([]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("nonce", RandomString(12))}, extra...)
	full, err := url.Parse(conf.AuthCodeURL(RandomString(12), opts...))
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, h.URL+"/oauth2/par", strings.NewReader(full.RawQuery))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(conf.ClientID), url.QueryEscape(conf.ClientSecret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		RequestURI string `json:"request_uri"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusCreated || body.RequestURI == "" {
		t.Fatalf("PAR: %d %+v %v", resp.StatusCode, body, err)
	}
	return h.URL + hp.AuthorizePath + "?" + url.Values{"client_id": {conf.ClientID}, "request_uri": {body.RequestURI}}.Encode()
}

var hostLoginPage = template.Must(template.New("login").Parse(`<!DOCTYPE html><title>host login</title>
<form method="post"><input type="hidden" name="return_to" value="{{.}}">
<input name="email"><input name="password" type="password"><button>Sign in</button></form>`))

func (h *Host) loginForm(w http.ResponseWriter, r *http.Request) {
	_ = hostLoginPage.Execute(w, r.URL.Query().Get("return_to"))
}

func (h *Host) login(hp *HostPlugin) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		u, ok := h.Users[r.PostForm.Get("email")]
		if !ok || u.Password != r.PostForm.Get("password") {
			http.Error(w, "wrong password", http.StatusUnauthorized)
			return
		}
		sid, err := hp.Plugin.BeginLogin(r.Context(), w, r, plugin.User{ID: u.ID, Email: u.Email})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		// The host's own session (a real host would keep it server side):
		// HostSIDCookie, for plugins that read it (Options.SessionFromRequest).
		http.SetCookie(w, &http.Cookie{Name: hp.HostSIDCookie(), Value: sid, Path: "/", HttpOnly: true})
		returnTo := r.PostForm.Get("return_to")
		if !strings.HasPrefix(returnTo, hp.AuthorizePath+"?") {
			_, _ = w.Write([]byte("signed in"))
			return
		}
		http.Redirect(w, r, returnTo, http.StatusSeeOther)
	}
}

// HostLogin runs a code flow at the host through hp for clientID, logging
// u in on the host's form, and stops where the browser is sent to the OTP
// page (or, when none is needed, at the redirect URI).
func (h *Host) HostLogin(t *testing.T, b *Browser, hp *HostPlugin, conf oauth2.Config, u HostUser, verifier string, extra ...oauth2.AuthCodeOption) *Page {
	t.Helper()
	opts := append([]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("nonce", RandomString(12))}, extra...)
	page := b.Follow(conf.AuthCodeURL(RandomString(12), opts...), RedirectURI)
	if page.URL.Path == hp.LoginPath {
		page = b.Submit(page, hp.LoginPath, url.Values{"email": {u.Email}, "password": {u.Password}, "return_to": {page.HiddenField("return_to")}}, RedirectURI)
	}
	return page
}

// Exchange exchanges the code of the redirect page.
func (h *Host) Exchange(t *testing.T, conf oauth2.Config, page *Page, verifier string) *oauth2.Token {
	t.Helper()
	code := page.URL.Query().Get("code")
	if code == "" {
		t.Fatalf("no code: %s", page)
	}
	tok, err := conf.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	return tok
}
