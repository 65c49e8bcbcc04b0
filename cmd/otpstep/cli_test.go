package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"

	"github.com/otpstep/otpstep/provider"
	"github.com/otpstep/otpstep/storage"
)

type cli struct {
	t    *testing.T
	env  map[string]string
	args []string // before every command's own
}

func newCLI(t *testing.T) *cli {
	return &cli{t: t, env: map[string]string{
		"OTPSTEP_DATABASE_DSN":   "sqlite://" + filepath.Join(t.TempDir(), "cli.db"),
		"OTPSTEP_SECRETS_SYSTEM": strings.Repeat("cli-secret-", 4),
		"OTPSTEP_MAIL_DRIVER":    "smtp",
		"OTPSTEP_MAIL_SMTP_URL":  "smtp://127.0.0.1:2525",
		"OTPSTEP_MAIL_TLS":       "none",
		"OTPSTEP_LOG_LEVEL":      "error",
	}}
}

func (c *cli) run(args ...string) (string, error) {
	c.t.Helper()
	var out, errOut bytes.Buffer
	cmd := newRootCommand(&out, &errOut, func(k string) (string, bool) { v, ok := c.env[k]; return v, ok })
	cmd.SetArgs(append(slices.Clone(c.args), args...))
	err := cmd.ExecuteContext(c.t.Context())
	return out.String(), err
}

func (c *cli) mustJSON(v any, args ...string) {
	c.t.Helper()
	out, err := c.run(args...)
	if err != nil {
		c.t.Fatalf("%v: %v", args, err)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		c.t.Fatalf("%v printed %q: %v", args, out, err)
	}
}

// withUpstream writes a config file configuring the upstream "partner" and
// passes it to every later run.
func (c *cli) withUpstream() {
	c.t.Helper()
	path := filepath.Join(c.t.TempDir(), "otpstep.yaml")
	const yaml = "upstreams:\n  - name: partner\n    issuer: https://id.partner.example\n    client_id: otpstep\n    client_secret: partner-secret\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		c.t.Fatal(err)
	}
	c.args = []string{"--config", path}
}

func TestCLI_UsersClientsIdentitiesAudit(t *testing.T) {
	c := newCLI(t)
	c.withUpstream()
	var user map[string]any
	c.mustJSON(&user, "users", "create", "--email", "Ann@Example.com", "--password", "long enough pw")
	id, _ := user["id"].(string)
	if len(id) != 36 || user["email"] != "ann@example.com" {
		t.Fatalf("user %v", user)
	}
	if _, err := c.run("users", "create", "--email", "ann@example.com", "--password", "long enough pw"); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("duplicate user: %v", err)
	}
	var client map[string]any
	c.mustJSON(&client, "clients", "create", "--id", "rp", "--redirect-uri", "https://rp.example/cb", "--second-factor=false")
	if secret, _ := client["client_secret"].(string); len(secret) < 40 || client["require_second_factor"] != false {
		t.Fatalf("client %v", client)
	}
	var clients []map[string]any
	c.mustJSON(&clients, "clients", "list")
	if len(clients) != 1 || clients[0]["client_secret"] != nil {
		t.Fatalf("clients list %v (secrets must not be listed)", clients)
	}
	if _, err := c.run("clients", "create", "--id", "bad", "--redirect-uri", "http://evil.example/cb"); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("http redirect on a public host: %v", err)
	}
	var link map[string]any
	c.mustJSON(&link, "identities", "link", "--user", id, "--provider", "partner", "--subject", "p-1")
	var links []map[string]any
	c.mustJSON(&links, "identities", "list", "--user", id)
	if link["user_id"] != id || link["provider"] != "partner" || link["subject"] != "p-1" || link["id"] == nil || link["created_at"] == nil {
		t.Fatalf("link %v", link)
	}
	if len(links) != 1 || links[0]["subject"] != "p-1" || links[0]["id"] != link["id"] {
		t.Fatalf("links %v", links)
	}
	if out, err := c.run("identities", "unlink", "--user", id, "--provider", "partner"); err != nil || !strings.Contains(out, "unlinked") {
		t.Fatalf("unlink: %q %v", out, err)
	}
	var events []map[string]any
	c.mustJSON(&events, "audit", "list", "--user", id)
	if len(events) != 2 || events[0]["Type"] != provider.AuditIdentityUnlinked || events[1]["Type"] != provider.AuditIdentityLinked {
		t.Fatalf("audit events %v", events)
	}
	for _, ev := range events {
		if d, _ := ev["Detail"].(map[string]any); d["by"] != provider.LinkByCLI || d["provider"] != "partner" {
			t.Errorf("audit event %v: want by %q and provider partner", ev, provider.LinkByCLI)
		}
	}
	if out, err := c.run("migrate", "status"); err != nil || !strings.Contains(out, "applied") {
		t.Fatalf("migrate status: %q %v", out, err)
	}
}

// TestCLI_IdentitiesCheckLikeTheAPI: identities link and unlink wrote the
// link straight to the database, for an upstream no one configured and for a
// disabled user. They go through provider.LinkIdentity/UnlinkIdentity, with
// the checks of the API and browser links.
func TestCLI_IdentitiesCheckLikeTheAPI(t *testing.T) {
	c := newCLI(t)
	c.withUpstream()
	var user map[string]any
	c.mustJSON(&user, "users", "create", "--email", "bob@example.com", "--password", "long enough pw")
	id, _ := user["id"].(string)
	for _, cmd := range [][]string{
		{"identities", "link", "--user", id, "--provider", "nowhere", "--subject", "p-1"},
		{"identities", "unlink", "--user", id, "--provider", "nowhere"},
	} {
		if _, err := c.run(cmd...); err == nil || !strings.Contains(err.Error(), `"nowhere"`) || !strings.Contains(err.Error(), "unknown upstream") {
			t.Errorf("%v: %v, want an unknown upstream error naming it", cmd[1], err)
		}
	}
	if _, err := c.run("identities", "link", "--user", uuid.NewString(), "--provider", "partner", "--subject", "p-1"); err == nil || !strings.Contains(err.Error(), "no user") {
		t.Errorf("link of an unknown user: %v", err)
	}
	if _, err := c.run("users", "disable", id); err != nil {
		t.Fatal(err)
	}
	if _, err := c.run("identities", "link", "--user", id, "--provider", "partner", "--subject", "p-1"); err == nil || !strings.Contains(err.Error(), "disabled") {
		t.Errorf("link of a disabled user: %v", err)
	}
	var links []map[string]any
	c.mustJSON(&links, "identities", "list", "--user", id)
	if len(links) != 0 {
		t.Errorf("links %v after refusals, want none", links)
	}
}

func TestCLI_BadInputExitsWithOneClearLine(t *testing.T) {
	c := newCLI(t)
	if _, err := c.run("users", "create", "--nope"); err == nil || !strings.Contains(err.Error(), "unknown flag") {
		t.Fatalf("bad flag: %v", err)
	}
	c.env["OTPSTEP_SECRETS_SYSTEM"] = "short"
	if _, err := c.run("users", "list"); err == nil || !strings.Contains(err.Error(), "secrets.system (OTPSTEP_SECRETS_SYSTEM)") {
		t.Fatalf("short secret: %v", err)
	}
	c.env["OTPSTEP_SECRETS_SYSTEM"] = strings.Repeat("x", 32)
	c.env["OTPSTEP_OTP_TTL"] = "soon"
	if _, err := c.run("serve"); err == nil || !strings.Contains(err.Error(), "otp.ttl") {
		t.Fatalf("bad duration: %v", err)
	}
}

func TestCLI_PurgeDeletesWhatExpired(t *testing.T) {
	c := newCLI(t)
	if _, err := c.run("migrate", "up"); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	s, err := storage.Open(ctx, c.env["OTPSTEP_DATABASE_DSN"], storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	u := &storage.User{Email: "purge@example.com"}
	now := time.Now()
	for _, err := range []error{
		s.CreateUser(ctx, u),
		s.CreateLoginSession(ctx, &storage.LoginSession{ID: uuid.NewString(), UserID: u.ID, AMR: []string{"pwd"}, AuthTime: now, ExpiresAt: now.Add(-time.Minute)}),
		s.CreateLoginSession(ctx, &storage.LoginSession{ID: uuid.NewString(), UserID: u.ID, AMR: []string{"pwd"}, AuthTime: now, ExpiresAt: now.Add(time.Hour)}),
		s.AddAuditEvents(ctx,
			&storage.AuditEvent{At: now.Add(-49 * time.Hour), Type: provider.AuditSessionCreated, UserID: u.ID},
			&storage.AuditEvent{At: now, Type: provider.AuditSessionCreated, UserID: u.ID}),
		s.Close(),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	// The expired session; with database.audit_retention, the old event too.
	for _, step := range []struct {
		retention string
		want      int64
	}{{"0s", 1}, {"48h", 1}, {"48h", 0}} {
		c.env["OTPSTEP_DATABASE_AUDIT_RETENTION"] = step.retention
		var got map[string]int64
		c.mustJSON(&got, "purge")
		if got["deleted"] != step.want {
			t.Fatalf("purge with audit_retention %s printed %v, want deleted %d", step.retention, got, step.want)
		}
	}
	var events []map[string]any
	c.mustJSON(&events, "audit", "list")
	if len(events) != 1 {
		t.Fatalf("audit events left: %v, want the recent one", events)
	}
}

// clients create --token-endpoint-auth-method with --jwks-file or
// --jwks-uri registers how the client authenticates; a private_key_jwt
// client gets no secret, a none client is public, an unknown method or a
// key set for a secret client is refused.
func TestCLI_ClientsCreateAuthMethods(t *testing.T) {
	c := newCLI(t)
	file := filepath.Join(t.TempDir(), "jwks.json")
	jwks := `{"keys":[{"use":"sig","kty":"EC","kid":"k1","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}`
	if err := os.WriteFile(file, []byte(jwks), 0o600); err != nil {
		t.Fatal(err)
	}
	var pk, uri, post, none map[string]any
	c.mustJSON(&pk, "clients", "create", "--id", "pk", "--redirect-uri", "https://rp.example/cb", "--token-endpoint-auth-method", "private_key_jwt", "--jwks-file", file)
	c.mustJSON(&uri, "clients", "create", "--id", "uri", "--grant-type", "client_credentials", "--token-endpoint-auth-method", "private_key_jwt", "--jwks-uri", "https://rp.example/jwks")
	c.mustJSON(&post, "clients", "create", "--id", "post", "--redirect-uri", "https://rp.example/cb", "--token-endpoint-auth-method", "client_secret_post")
	c.mustJSON(&none, "clients", "create", "--id", "none", "--redirect-uri", "https://rp.example/cb", "--token-endpoint-auth-method", "none")
	if pk["token_endpoint_auth_method"] != "private_key_jwt" || pk["client_secret"] != nil || pk["has_jwks"] != true || pk["token_endpoint_auth_signing_alg"] != "ES256" {
		t.Fatalf("private_key_jwt with --jwks-file: %v", pk)
	}
	if uri["jwks_uri"] != "https://rp.example/jwks" || uri["token_endpoint_auth_signing_alg"] != "RS256" || uri["client_secret"] != nil {
		t.Fatalf("private_key_jwt with --jwks-uri: %v", uri)
	}
	if post["token_endpoint_auth_method"] != "client_secret_post" || post["client_secret"] == nil {
		t.Fatalf("client_secret_post: %v", post)
	}
	if none["token_endpoint_auth_method"] != "none" || none["public"] != true || none["client_secret"] != nil {
		t.Fatalf("none: %v", none)
	}
	for _, args := range [][]string{
		{"--token-endpoint-auth-method", "client_secret_jwt"},
		{"--jwks-file", file},
		{"--token-endpoint-auth-method", "private_key_jwt"},
		{"--jwks-file", filepath.Join(t.TempDir(), "missing.json"), "--token-endpoint-auth-method", "private_key_jwt"},
	} {
		if _, err := c.run(append([]string{"clients", "create", "--redirect-uri", "https://rp.example/cb"}, args...)...); err == nil {
			t.Errorf("%v was accepted", args)
		}
	}
}

// keys rotate --alg ES256 adds an ES256 key beside the RS256 one (both
// published and active), after which a client may choose ES256 ID tokens;
// users create --email-verified starts verified.
func TestCLI_KeysRotateAlgAndVerifiedUsers(t *testing.T) {
	c := newCLI(t)
	if _, err := c.run("clients", "create", "--redirect-uri", "https://rp.example/cb", "--id-token-signed-response-alg", "ES256"); err == nil || !strings.Contains(err.Error(), "keys rotate --alg ES256") {
		t.Fatalf("ES256 client before an ES256 key: %v", err)
	}
	if _, err := c.run("keys", "rotate", "--alg", "HS256"); err == nil || !strings.Contains(err.Error(), "--alg") {
		t.Fatalf("keys rotate --alg HS256: %v", err)
	}
	out, err := c.run("keys", "rotate", "--alg", "ES256")
	if err != nil || !strings.Contains(out, "(ES256)") {
		t.Fatalf("keys rotate --alg ES256: %q %v", out, err)
	}
	var set struct {
		Keys []struct {
			Alg string `json:"alg"`
		} `json:"keys"`
	}
	c.mustJSON(&set, "keys", "list")
	algs := map[string]bool{}
	for _, k := range set.Keys {
		algs[k.Alg] = true
	}
	if !algs["RS256"] || !algs["ES256"] {
		t.Fatalf("published algorithms: %v", set)
	}
	var client map[string]any
	c.mustJSON(&client, "clients", "create", "--redirect-uri", "https://rp.example/cb", "--id-token-signed-response-alg", "ES256")
	if client["id_token_signed_response_alg"] != "ES256" {
		t.Fatalf("client: %v", client)
	}
	var plain, verified map[string]any
	c.mustJSON(&plain, "users", "create", "--email", "plain@example.com", "--password", "long enough pw")
	c.mustJSON(&verified, "users", "create", "--email", "v@example.com", "--password", "long enough pw", "--email-verified")
	if plain["email_verified"] != false || verified["email_verified"] != true {
		t.Fatalf("users: %v / %v", plain, verified)
	}
}

// clients create --login-ui and --introspect-any are stored on the client
// and shown by clients list; a client created without them has neither.
func TestCLI_ClientPermissions(t *testing.T) {
	c := newCLI(t)
	var ui, rs, plain map[string]any
	c.mustJSON(&ui, "clients", "create", "--id", "ui", "--redirect-uri", "https://ui.example/cb", "--second-factor=false", "--login-ui")
	c.mustJSON(&rs, "clients", "create", "--id", "rs", "--grant-type", "client_credentials", "--introspect-any")
	c.mustJSON(&plain, "clients", "create", "--id", "rp", "--redirect-uri", "https://rp.example/cb")
	if ui["login_ui"] != true || ui["introspect_any"] != false || rs["introspect_any"] != true || rs["login_ui"] != false ||
		plain["login_ui"] != false || plain["introspect_any"] != false {
		t.Fatalf("created: %v / %v / %v", ui, rs, plain)
	}
	var clients []map[string]any
	c.mustJSON(&clients, "clients", "list")
	got := map[string][2]any{}
	for _, cl := range clients {
		got[cl["client_id"].(string)] = [2]any{cl["login_ui"], cl["introspect_any"]}
	}
	want := map[string][2]any{"ui": {true, false}, "rs": {false, true}, "rp": {false, false}}
	for id, w := range want {
		if got[id] != w {
			t.Fatalf("clients list %s: login_ui, introspect_any = %v, want %v", id, got[id], w)
		}
	}
	if _, err := c.run("clients", "create", "--id", "spa", "--public", "--redirect-uri", "https://spa.example/cb", "--introspect-any"); err == nil || !strings.Contains(err.Error(), "introspect") {
		t.Fatalf("public client with --introspect-any: %v", err)
	}
}

// RFC 6749 §3.3: a scope token is 1*NQCHAR (no space, '"' or '\'); a
// --scope value is split at spaces (`--scope "openid email"` is two scopes,
// never one with a space), and a token outside NQCHAR is refused naming the
// flag, as is a redirect URI that is not absolute; nothing is stored.
func TestCLI_ClientsCreateRefusesScopesOutsideNQCHARAndRelativeRedirects(t *testing.T) {
	c := newCLI(t)
	for _, tc := range []struct {
		args []string
		want []string // each in the error
	}{
		{[]string{"--scope", "openid\temail"}, []string{`--scope "openid\temail"`, "NQCHAR"}},
		{[]string{"--scope", "openid e\\mail"}, []string{`--scope "e\\mail"`, "NQCHAR"}},
		{[]string{"--scope", "  "}, []string{`--scope "  "`, "space"}},
		{[]string{"--scope", `a\b`}, []string{`--scope "a\\b"`, "NQCHAR"}},
		{[]string{"--scope", "café"}, []string{`--scope "café"`, "NQCHAR"}},
		{[]string{"--scope", "openid,,email"}, []string{`--scope ""`}},
		{[]string{"--redirect-uri", "/callback"}, []string{`--redirect-uri "/callback"`, "absolute"}},
		{[]string{"--redirect-uri", "rp.example/cb"}, []string{`--redirect-uri "rp.example/cb"`, "absolute"}},
	} {
		args := append([]string{"clients", "create", "--id", "c-" + uuid.NewString()[:8]}, tc.args...)
		if !slices.Contains(tc.args, "--redirect-uri") {
			args = append(args, "--redirect-uri", "https://rp.example/cb")
		}
		_, err := c.run(args...)
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%v: err = %v, want it to contain %q", tc.args, err, w)
			}
		}
	}
	var clients []map[string]any
	c.mustJSON(&clients, "clients", "list")
	if len(clients) != 0 {
		t.Fatalf("refused clients were stored: %v", clients)
	}
	// The list forms (spaces, commas, repeats) store one scope each.
	var client map[string]any
	c.mustJSON(&client, "clients", "create", "--id", "ok", "--redirect-uri", "https://rp.example/cb", "--scope", "openid email", "--scope", "profile,pay:write")
	if got := fmt.Sprint(client["scopes"]); got != "[openid email profile pay:write]" {
		t.Fatalf("scopes = %s", got)
	}
}

// users disable ends the user's sessions and revokes the user's tokens in
// the database, not only the flag (before: the session and the token lived on).
func TestCLI_UsersDisableEndsSessionsAndRevokesTokens(t *testing.T) {
	c := newCLI(t)
	var user map[string]any
	c.mustJSON(&user, "users", "create", "--email", "dis@example.com", "--password", "long enough pw")
	id, _ := user["id"].(string)
	ctx := t.Context()
	s, err := storage.Open(ctx, c.env["OTPSTEP_DATABASE_DSN"], storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	ls := &storage.LoginSession{UserID: id, AMR: []string{"pwd"}, AuthTime: now, ExpiresAt: now.Add(time.Hour)}
	client := &storage.Client{ID: "rp", RedirectURIs: []string{"https://rp.example/cb"}, GrantTypes: []string{"authorization_code"},
		ResponseTypes: []string{"code"}, Scopes: []string{"openid"}, TokenEndpointAuthMethod: "client_secret_basic", SecretHash: "sha256$00"}
	session := openid.NewDefaultSession()
	session.Subject, session.Claims.Subject, session.Claims.Extra = id, id, map[string]any{"sid": ""}
	for _, err := range []error{s.CreateLoginSession(ctx, ls), s.CreateClient(ctx, client)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	session.Claims.Extra["sid"] = ls.ID
	req := &fosite.Request{ID: uuid.NewString(), RequestedAt: now, Client: client, Session: session, Form: url.Values{}}
	if err := s.CreateAccessTokenSession(ctx, "at-1", req); err != nil {
		t.Fatal(err)
	}
	if out, err := c.run("users", "disable", id); err != nil || !strings.Contains(out, "disabled") {
		t.Fatalf("disable: %q %v", out, err)
	}
	if _, err := s.GetLoginSession(ctx, ls.ID); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("the session after disable: %v", err)
	}
	if _, err := s.GetAccessTokenSession(ctx, "at-1", openid.NewDefaultSession()); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("the token after disable: %v", err)
	}
}

// Each management command validates only the keys it uses: migrate, purge
// and audit the database; clients, users, keys and identities also the
// secret; serve everything. No mail settings (and a bogus mail driver) stop
// none of them but serve, which names the key.
func TestCLI_ManagementCommandsValidateOnlyWhatTheyUse(t *testing.T) {
	c := newCLI(t)
	delete(c.env, "OTPSTEP_MAIL_SMTP_URL")
	delete(c.env, "OTPSTEP_MAIL_TLS")
	c.env["OTPSTEP_MAIL_DRIVER"] = "bogus"
	c.env["OTPSTEP_SERVER_LISTEN"] = "no-port"
	for _, args := range [][]string{
		{"migrate", "up"}, {"migrate", "status"}, {"purge"}, {"audit", "list"},
		{"users", "create", "--email", "ann@example.com", "--password", "long enough pw"}, {"users", "list"},
		{"clients", "list"}, {"keys", "rotate"}, {"keys", "list"},
	} {
		if _, err := c.run(args...); err != nil {
			t.Errorf("%v with a bogus mail driver and listen address: %v", args, err)
		}
	}
	_, err := c.run("serve")
	if err == nil || !strings.Contains(err.Error(), "mail.driver") || !strings.Contains(err.Error(), "server.listen") {
		t.Fatalf("serve: %v, want mail.driver and server.listen named", err)
	}
	// What a command uses is still validated.
	delete(c.env, "OTPSTEP_SECRETS_SYSTEM")
	if _, err := c.run("migrate", "status"); err != nil {
		t.Errorf("migrate status without a secret: %v", err)
	}
	if _, err := c.run("users", "list"); err == nil || !strings.Contains(err.Error(), "secrets.system") {
		t.Errorf("users list without a secret: %v, want secrets.system", err)
	}
	c.env["OTPSTEP_DATABASE_DSN"] = ""
	if _, err := c.run("migrate", "up"); err == nil || !strings.Contains(err.Error(), "database.dsn") {
		t.Errorf("migrate up without a DSN: %v, want database.dsn", err)
	}
}

// clients create --post-logout-redirect-uri registers each URI exactly (a
// comma stays in the URI) and refuses one that is not absolute, naming the flag.
func TestCLI_ClientsCreatePostLogoutRedirectURIs(t *testing.T) {
	c := newCLI(t)
	if _, err := c.run("clients", "create", "--id", "bad", "--redirect-uri", "https://rp.example/cb", "--post-logout-redirect-uri", "/bye"); err == nil ||
		!strings.Contains(err.Error(), `--post-logout-redirect-uri "/bye"`) || !strings.Contains(err.Error(), "absolute") {
		t.Fatalf("err = %v", err)
	}
	var client map[string]any
	c.mustJSON(&client, "clients", "create", "--id", "rp", "--redirect-uri", "https://rp.example/cb",
		"--post-logout-redirect-uri", "https://rp.example/bye?a=1,2", "--post-logout-redirect-uri", "http://127.0.0.1:8080/bye")
	if got := fmt.Sprint(client["post_logout_redirect_uris"]); got != "[https://rp.example/bye?a=1,2 http://127.0.0.1:8080/bye]" {
		t.Fatalf("post_logout_redirect_uris = %s", got)
	}
	var clients []map[string]any
	c.mustJSON(&clients, "clients", "list")
	if len(clients) != 1 || fmt.Sprint(clients[0]["post_logout_redirect_uris"]) != fmt.Sprint(client["post_logout_redirect_uris"]) {
		t.Fatalf("clients list = %v", clients)
	}
	// The back channel: an absolute URL; session required needs one.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--backchannel-logout-uri", "rp.example/bc"}, `--backchannel-logout-uri "rp.example/bc"`},
		{[]string{"--backchannel-logout-uri", "https://rp.example/bc#x"}, "fragment"},
		{[]string{"--backchannel-logout-session-required"}, "needs --backchannel-logout-uri"},
	} {
		args := append([]string{"clients", "create", "--id", "bc-bad", "--redirect-uri", "https://rp.example/cb"}, tc.args...)
		if _, err := c.run(args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want %q", tc.args, err, tc.want)
		}
	}
	c.mustJSON(&client, "clients", "create", "--id", "bc", "--redirect-uri", "https://rp.example/cb",
		"--backchannel-logout-uri", "https://rp.example/bc", "--backchannel-logout-session-required")
	if client["backchannel_logout_uri"] != "https://rp.example/bc" || client["backchannel_logout_session_required"] != true {
		t.Fatalf("back channel = %v", client)
	}
}
