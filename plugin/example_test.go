package plugin_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/storage"

	"github.com/otpstep/otpstep/plugin"
)

// printMailer is a Mailer that prints instead of sending.
type printMailer struct{}

func (printMailer) Send(_ context.Context, m plugin.MailMessage) error {
	fmt.Println("mail to", m.To)
	return nil
}

// Embedding otpstep in a fosite server: New with the host's fosite, Mount
// under a prefix the host chooses, and the host's authorize endpoint wrapped
// in RequireSecondFactor. examples/embedded is the whole server.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "otpstep-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	// The host's own fosite, storage and keys.
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		log.Fatal(err)
	}
	host := compose.ComposeAllEnabled(&fosite.Config{GlobalSecret: []byte("the-hosts-32-byte-global-secret!")}, storage.NewMemoryStore(), key)

	cfg := plugin.DefaultConfig() // the keys of config.example.yaml
	cfg.Server.PublicURL = "https://auth.example.com"
	cfg.Secrets.System = "0123456789abcdef0123456789abcdef"
	cfg.Database.DSN = "sqlite://" + filepath.Join(dir, "otpstep.db")
	p, err := plugin.New(ctx, plugin.Options{Config: cfg, OAuth2: host, Mailer: printMailer{}})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	if err := p.Migrate(ctx); err != nil {
		log.Fatal(err)
	}

	r := http.NewServeMux()              // or gorilla/mux: p.Mount(r.PathPrefix("/mfa").Subrouter())
	r.Handle("/mfa/", p.Handler("/mfa")) // the user API and the OTP pages under /mfa
	r.Handle("GET /oauth2/auth", p.RequireSecondFactor(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The host's authorize handler answers p.AuthorizeRequestFrom(r.Context());
		// p.ClaimsFrom(r.Context()) holds the session's sid, acr and amr
		// once the second factor passed (false: send the browser to the
		// login, which calls BeginLogin and redirects back to
		// plugin.ResumeAuthorizeURI).
	})))
	if err := p.Start(ctx); err != nil { // delivers the mail from now on
		log.Fatal(err)
	}

	// The host's login handler, once the password is right:
	sid, err := p.BeginLogin(ctx, httptest.NewRecorder(), nil, plugin.User{ID: "7b0f6a55-3b8e-4a43-9a1b-0c2f5d3e9a01", Email: "alice@example.com"})
	if err != nil {
		log.Fatal(err)
	}
	claims, err := p.SessionClaims(ctx, sid)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(claims.ACR, claims.AMR)

	// The user API wants one of the host's access tokens.
	req := httptest.NewRequest(http.MethodPost, "/mfa/user/2024-3/user/otp/verify", strings.NewReader(`{"otp":"123456","types":["login"]}`))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, req)
	fmt.Println(rec.Code)
	// Output:
	// aal1 [pwd]
	// 401
}

// Loading otpstep's configuration as `otpstep serve` does: the defaults, then
// a YAML file, then the OTPSTEP_* environment (here a map, not os.LookupEnv).
// A key the file misspells is an error naming it.
func ExampleLoadConfig() {
	dir, err := os.MkdirTemp("", "otpstep-config")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "otpstep.yaml")
	yaml := "server:\n  public_url: https://login.example.com\ndatabase:\n  dsn: sqlite://otpstep.db\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		log.Fatal(err)
	}
	env := map[string]string{"OTPSTEP_OTP_LENGTH": "8"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	cfg, err := plugin.LoadConfig(path, lookup)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cfg.Server.PublicURL, cfg.Database.DSN, cfg.OTP.Length)

	if err := os.WriteFile(path, []byte("otp:\n  lenght: 8\n"), 0o600); err != nil {
		log.Fatal(err)
	}
	_, err = plugin.LoadConfig(path, nil)
	fmt.Println(strings.ReplaceAll(err.Error(), path, "otpstep.yaml"))
	// Output:
	// https://login.example.com sqlite://otpstep.db 8
	// config: otp.lenght: unknown key in otpstep.yaml
}
