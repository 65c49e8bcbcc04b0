// Command embedded is a small OAuth2 / OpenID Connect server of its own —
// its own fosite (compose.Compose over fosite's storage.MemoryStore), its own
// users and login page — that adds otpstep's emailed second factor with
// package plugin. Run it with `go run ./examples/embedded`; README.md beside
// this file walks through a login.
package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/glebarez/sqlite"
	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/handler/openid"
	fositestorage "github.com/ory/fosite/storage"
	"github.com/ory/fosite/token/jwt"
	"golang.org/x/crypto/bcrypt"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/otpstep/otpstep/plugin"
)

// The example's clients, users and paths.
const (
	// ClientRP is a relying party that needs the second factor.
	ClientRP = "example-rp"
	// ClientLoginUI is a login UI that drives the second factor itself
	// through otpstep's user API, so its own authorize requests are not held.
	ClientLoginUI = "example-login-ui"
	ClientSecret  = "example-secret-0123456789"
	// MFAPrefix is where the host mounts the plugin.
	MFAPrefix = "/mfa"
)

// hostUser is an account of the host: the host owns users and passwords.
type hostUser struct {
	ID, Email    string
	passwordHash []byte
}

// Host is the example's authorization server.
type Host struct {
	Plugin  *plugin.Plugin
	OAuth2  fosite.OAuth2Provider
	Handler http.Handler
	// Users are the host's accounts, by email.
	Users map[string]*hostUser

	issuer string
	db     *gorm.DB
}

// HostConfig is what the example is started with.
type HostConfig struct {
	PublicURL string
	// DBPath is the SQLite file of the host's database, where otpstep's
	// tables live too.
	DBPath string
	// Secret seeds the host's token HMAC and otpstep's keys (32 bytes or more).
	Secret string
	Mailer plugin.Mailer
	Logger *slog.Logger
}

// NewHost composes the host's fosite, opens its database and adds otpstep.
func NewHost(ctx context.Context, hc HostConfig) (*Host, error) {
	h := &Host{issuer: hc.PublicURL, Users: map[string]*hostUser{}}

	// The host's database: a *gorm.DB it would use for its own tables too.
	db, err := gorm.Open(sqlite.Open(hc.DBPath+"?_pragma=foreign_keys(1)&_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)"),
		&gorm.Config{Logger: logger.Discard})
	if err != nil {
		return nil, err
	}
	h.db = db

	// The host's fosite: its tokens live in fosite's MemoryStore.
	store := fositestorage.NewMemoryStore()
	secret, err := bcrypt.GenerateFromPassword([]byte(ClientSecret), bcrypt.DefaultCost)
	if err != nil {
		return nil, err
	}
	store.Clients[ClientRP] = &fosite.DefaultClient{
		ID: ClientRP, Secret: secret,
		RedirectURIs:  []string{hc.PublicURL + "/callback"},
		ResponseTypes: []string{"code"},
		GrantTypes:    []string{"authorization_code", "refresh_token"},
		Scopes:        []string{"openid", "offline_access", "email"},
	}
	store.Clients[ClientLoginUI] = &fosite.DefaultClient{
		ID: ClientLoginUI, Secret: secret,
		RedirectURIs:  []string{hc.PublicURL + "/callback"},
		ResponseTypes: []string{"code"},
		GrantTypes:    []string{"authorization_code"},
		Scopes:        []string{"openid", "user:sessions:update", "user:otp:verify"},
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	keyGetter := func(context.Context) (interface{}, error) { return key, nil }
	config := &fosite.Config{
		AccessTokenLifespan:   time.Hour,
		AuthorizeCodeLifespan: 10 * time.Minute,
		IDTokenLifespan:       time.Hour,
		IDTokenIssuer:         hc.PublicURL,
		AccessTokenIssuer:     hc.PublicURL,
		TokenURL:              hc.PublicURL + "/oauth2/token",
		GlobalSecret:          []byte(hc.Secret)[:32],
		ScopeStrategy:         fosite.ExactScopeStrategy,
		EnforcePKCE:           true,
	}
	h.OAuth2 = compose.Compose(config, store, &compose.CommonStrategy{
		CoreStrategy:               compose.NewOAuth2HMACStrategy(config),
		OpenIDConnectTokenStrategy: compose.NewOpenIDConnectStrategy(keyGetter, config),
		Signer:                     &jwt.DefaultSigner{GetPrivateKey: keyGetter},
	},
		compose.OAuth2AuthorizeExplicitFactory,
		compose.OAuth2PKCEFactory,
		compose.OAuth2RefreshTokenGrantFactory,
		compose.OpenIDConnectExplicitFactory,
		// otpstep's user API checks the host's access tokens with it.
		compose.OAuth2TokenIntrospectionFactory,
	)

	// The host's users. The ids are uuids, as otpstep's PUT /sessions wants.
	alice, err := bcrypt.GenerateFromPassword([]byte("alice-password"), bcrypt.DefaultCost)
	if err != nil {
		return nil, err
	}
	h.Users["alice@example.com"] = &hostUser{ID: "7b0f6a55-3b8e-4a43-9a1b-0c2f5d3e9a01", Email: "alice@example.com", passwordHash: alice}

	// otpstep, embedded: the same keys as its YAML, the host's fosite and
	// database, and a Mailer for the codes.
	cfg := plugin.DefaultConfig()
	cfg.Server.PublicURL = hc.PublicURL
	cfg.Secrets.System = hc.Secret
	cfg.Database.MigrateOnStart = false // Migrate below
	cfg.Login.CookieName = "example_mfa"
	h.Plugin, err = plugin.New(ctx, plugin.Options{
		Config: cfg,
		DB:     db,
		OAuth2: h.OAuth2,
		Mailer: hc.Mailer,
		Logger: hc.Logger,
		// The login UI passes the second factor through the user API: it
		// needs none at the authorize endpoint, and it is the one client
		// trusted to pass it (and to receive the login code) there.
		SecondFactorRequired: func(ar fosite.AuthorizeRequester) bool {
			return ar.GetClient().GetID() != ClientLoginUI
		},
		LoginUIClient: func(c fosite.Client) bool { return c.GetID() == ClientLoginUI },
	})
	if err != nil {
		return nil, err
	}
	if err := h.Plugin.Migrate(ctx); err != nil {
		return nil, err
	}

	// net/http's ServeMux: the plugin's routes are one handler under
	// MFAPrefix (a gorilla/mux host may Mount on a subrouter instead).
	r := http.NewServeMux()
	r.Handle(MFAPrefix+"/", h.Plugin.Handler(MFAPrefix))
	r.Handle("GET /oauth2/auth", h.Plugin.RequireSecondFactor(http.HandlerFunc(h.authorize)))
	r.HandleFunc("POST /oauth2/token", h.token)
	r.HandleFunc("GET /login", h.loginForm)
	r.HandleFunc("POST /login", h.login)
	r.HandleFunc("POST /logout", h.logout)
	r.HandleFunc("GET /callback", h.callback)
	h.Handler = r
	return h, nil
}

// Close closes the plugin and then the host's database.
func (h *Host) Close() error {
	err := h.Plugin.Close()
	if sqlDB, dbErr := h.db.DB(); dbErr == nil {
		err = errors.Join(err, sqlDB.Close())
	}
	return err
}

// authorize is the host's authorize endpoint, behind RequireSecondFactor:
// it answers the request RequireSecondFactor parsed (parsing it again
// would fail for a pushed request, whose request_uri fosite consumed).
func (h *Host) authorize(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	ar, _ := h.Plugin.AuthorizeRequestFrom(ctx)
	claims, ok := h.Plugin.ClaimsFrom(ctx)
	if !ok { // not logged in: the login redirects back after BeginLogin
		if ar.GetRequestForm().Get("prompt") == "none" {
			h.OAuth2.WriteAuthorizeError(ctx, w, ar, fosite.ErrLoginRequired)
			return
		}
		http.Redirect(w, r, "/login?"+url.Values{"return_to": {plugin.ResumeAuthorizeURI(r, ar)}}.Encode(), http.StatusSeeOther)
		return
	}
	for _, scope := range ar.GetRequestedScopes() {
		ar.GrantScope(scope)
	}
	session := &openid.DefaultSession{
		Claims:  &jwt.IDTokenClaims{Issuer: h.issuer, RequestedAt: time.Now().UTC()},
		Headers: &jwt.Headers{},
	}
	// The subject (the session's and the ID token's), sid, auth_time, acr
	// and amr from otpstep's login session.
	claims.Apply(session)
	resp, err := h.OAuth2.NewAuthorizeResponse(ctx, ar, session)
	if err != nil {
		h.OAuth2.WriteAuthorizeError(ctx, w, ar, err)
		return
	}
	h.OAuth2.WriteAuthorizeResponse(ctx, w, ar, resp)
}

// token is the host's token endpoint.
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

var loginPage = template.Must(template.New("login").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Example host · sign in</title></head>
<body><h1>Sign in to the example host</h1>
{{if .Error}}<p role="alert">{{.Error}}</p>{{end}}
<form method="post" action="/login">
<input type="hidden" name="return_to" value="{{.ReturnTo}}">
<label>Email <input name="email" type="email" value="{{.Email}}" required></label>
<label>Password <input name="password" type="password" required></label>
<button type="submit">Sign in</button>
</form></body></html>
`))

type loginData struct{ Email, Error, ReturnTo string }

// localReturnTo keeps return_to on the host's authorize endpoint.
func localReturnTo(raw string) string {
	if strings.HasPrefix(raw, "/oauth2/auth?") && !strings.ContainsAny(raw, "\\\r\n") {
		return raw
	}
	return ""
}

func (h *Host) loginForm(w http.ResponseWriter, r *http.Request) {
	_ = loginPage.Execute(w, loginData{ReturnTo: localReturnTo(r.URL.Query().Get("return_to"))})
}

// login is the host's own first factor; then it tells otpstep.
func (h *Host) login(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	email, returnTo := strings.ToLower(r.PostForm.Get("email")), localReturnTo(r.PostForm.Get("return_to"))
	u, ok := h.Users[email]
	if !ok || bcrypt.CompareHashAndPassword(u.passwordHash, []byte(r.PostForm.Get("password"))) != nil {
		w.WriteHeader(http.StatusUnauthorized)
		_ = loginPage.Execute(w, loginData{Email: email, Error: "The email or password is not right.", ReturnTo: returnTo})
		return
	}
	if _, err := h.Plugin.BeginLogin(r.Context(), w, r, plugin.User{ID: u.ID, Email: u.Email}); err != nil {
		http.Error(w, "login failed", http.StatusInternalServerError)
		return
	}
	if returnTo == "" {
		fmt.Fprintln(w, "Signed in.")
		return
	}
	http.Redirect(w, r, returnTo, http.StatusSeeOther)
}

func (h *Host) logout(w http.ResponseWriter, r *http.Request) {
	if err := h.Plugin.EndLogin(r.Context(), w, r); err != nil {
		http.Error(w, "logout failed", http.StatusInternalServerError)
		return
	}
	fmt.Fprintln(w, "Signed out.")
}

// callback stands in for the relying parties' redirect URI: it shows the
// code to exchange.
func (h *Host) callback(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if e := r.URL.Query().Get("error"); e != "" {
		fmt.Fprintf(w, "error: %s: %s\n", e, r.URL.Query().Get("error_description"))
		return
	}
	fmt.Fprintf(w, "code=%s\n", r.URL.Query().Get("code"))
}

// consoleMailer is the example's Mailer: it prints the mail, code included,
// instead of sending it. Use mail.NewSMTP (or your own delivery) for real.
type consoleMailer struct{}

func (consoleMailer) Send(_ context.Context, m plugin.MailMessage) error {
	fmt.Printf("\n--- mail to %s: %s\n%s\n---\n", m.To, m.Subject, m.Text)
	return nil
}

// PKCEVerifier is the fixed code verifier of the printed authorize URLs
// (its S256 challenge is PKCEChallenge); a real client draws one per login.
const (
	PKCEVerifier  = "example-pkce-verifier-0123456789-abcdefghijklmnopqrstuvwxyz"
	PKCEChallenge = "XVpGoFAFrmex8t7BvHMUG3eYUd0p7QoM87QBT0pk1k0"
)

// AuthorizeURL is a ready-made authorize URL for client.
func AuthorizeURL(base, client, scope string) string {
	return base + "/oauth2/auth?" + url.Values{
		"client_id":             {client},
		"response_type":         {"code"},
		"scope":                 {scope},
		"redirect_uri":          {base + "/callback"},
		"state":                 {"example-state-1234"},
		"nonce":                 {"example-nonce-1234"},
		"code_challenge":        {PKCEChallenge},
		"code_challenge_method": {"S256"},
	}.Encode()
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "address to listen on")
	dbPath := flag.String("db", "embedded-example.db", "SQLite file of the host's database")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *listen, *dbPath, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "embedded:", err)
		os.Exit(1)
	}
}

// run serves the example until ctx ends, printing how to try it to out.
func run(ctx context.Context, listen, dbPath string, out io.Writer) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	base := "http://" + ln.Addr().String()
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	h, err := NewHost(ctx, HostConfig{
		PublicURL: base, DBPath: dbPath, Secret: hex.EncodeToString(raw), Mailer: consoleMailer{},
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return err
	}
	defer h.Close()
	if err := h.Plugin.Start(ctx); err != nil {
		return err
	}
	fmt.Fprintf(out, `Example host with otpstep's second factor on %[1]s (otpstep under %[1]s%[2]s)
Users: alice@example.com / alice-password. Mail (the one-time codes) is printed here.

A. The OTP page: open, sign in, type the code; /callback shows the code to exchange:
  %[3]s
B. A login UI passing the OTP through the user API (its own sign-in is not held):
  %[4]s

Exchange a code (client %[5]s or %[6]s):
  curl -s -u CLIENT:%[7]s -d grant_type=authorization_code -d code=PASTE_CODE \
    --data-urlencode redirect_uri=%[1]s/callback -d code_verifier=%[8]s %[1]s/oauth2/token
`, base, MFAPrefix, AuthorizeURL(base, ClientRP, "openid email"),
		AuthorizeURL(base, ClientLoginUI, "openid user:sessions:update user:otp:verify"),
		ClientRP, ClientLoginUI, ClientSecret, PKCEVerifier)
	srv := &http.Server{Handler: h.Handler, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
