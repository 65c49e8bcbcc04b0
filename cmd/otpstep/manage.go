package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/otpstep/otpstep/plugin"
	"github.com/otpstep/otpstep/provider"
	"github.com/otpstep/otpstep/storage"
)

// openStore opens the database alone for the commands that use nothing
// else (migrate, purge, audit): only database.* is validated.
func (a *app) openStore(ctx context.Context) (*storage.Store, plugin.Config, error) {
	cfg, err := a.loadConfig(plugin.ScopeDatabase)
	if err != nil {
		return nil, cfg, err
	}
	s, err := storage.Open(ctx, cfg.Database.DSN, storage.Options{Logger: a.logger(cfg)})
	if err != nil {
		return nil, cfg, fmt.Errorf("database.dsn: %w", err)
	}
	return s, cfg, nil
}

func (a *app) migrateCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "migrate", Short: "Database migrations"}
	cmd.AddCommand(&cobra.Command{
		Use: "up", Short: "Apply pending migrations", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, _, err := a.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer s.Close()
			if err := s.Migrate(cmd.Context()); err != nil {
				return err
			}
			fmt.Fprintln(a.out, "migrations applied")
			return nil
		},
	}, &cobra.Command{
		Use: "status", Short: "List migrations and whether they are applied", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, _, err := a.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer s.Close()
			st, err := s.MigrationStatus(cmd.Context())
			if err != nil {
				return err
			}
			for _, m := range st {
				applied := "pending"
				if m.AppliedAt != nil {
					applied = "applied " + m.AppliedAt.UTC().Format(time.RFC3339)
				}
				fmt.Fprintf(a.out, "%05d  %-40s %s\n", m.Version, m.Name, applied)
			}
			return nil
		},
	})
	return cmd
}

type clientJSON struct {
	ID                  string   `json:"client_id"`
	Secret              string   `json:"client_secret,omitempty"`
	Name                string   `json:"name"`
	RedirectURIs        []string `json:"redirect_uris"`
	GrantTypes          []string `json:"grant_types"`
	Scopes              []string `json:"scopes"`
	Public              bool     `json:"public"`
	SkipConsent         bool     `json:"skip_consent"`
	RequireSecondFactor bool     `json:"require_second_factor"`
	LoginUI             bool     `json:"login_ui"`
	IntrospectAny       bool     `json:"introspect_any"`
	ClientURI           string   `json:"client_uri,omitempty"`
	TokenEndpointAuth   string   `json:"token_endpoint_auth_method"`
	// private_key_jwt clients (a registered JWK Set shows as has_jwks).
	JWKSURI                     string `json:"jwks_uri,omitempty"`
	HasJWKS                     bool   `json:"has_jwks,omitempty"`
	TokenEndpointAuthSigningAlg string `json:"token_endpoint_auth_signing_alg,omitempty"`
	IDTokenSignedResponseAlg    string `json:"id_token_signed_response_alg,omitempty"`
	clientLogoutJSON
}

// clientLogoutJSON is a client's logout registration (storage.ClientLogout).
type clientLogoutJSON struct {
	PostLogoutRedirectURIs           []string `json:"post_logout_redirect_uris"`
	BackchannelLogoutURI             string   `json:"backchannel_logout_uri,omitempty"`
	BackchannelLogoutSessionRequired bool     `json:"backchannel_logout_session_required"`
}

func logoutJSON(c *storage.Client) clientLogoutJSON {
	l := c.Logout
	if l.PostLogoutRedirectURIs == nil {
		l.PostLogoutRedirectURIs = []string{}
	}
	return clientLogoutJSON{l.PostLogoutRedirectURIs, l.BackchannelLogoutURI, l.BackchannelLogoutSessionRequired}
}

func toClientJSON(c *storage.Client, secret string) clientJSON {
	return clientJSON{c.ID, secret, c.Name, c.RedirectURIs, c.GrantTypes, c.Scopes, c.Public, c.SkipConsent,
		c.RequireSecondFactor, c.LoginUI, c.IntrospectAny, c.ClientURI, c.GetTokenEndpointAuthMethod(),
		c.JWKSURI, c.JWKS != "", c.TokenEndpointAuthSigningAlg, c.IDTokenSignedResponseAlg,
		logoutJSON(c)}
}

// splitScopeFlag turns --scope values into scope tokens: each value is split
// at spaces (RFC 6749 §3.3: scope = scope-token *( SP scope-token )), and
// every token must be 1*NQCHAR; an empty one (",,") or one with another
// character outside NQCHAR is refused naming the flag.
func splitScopeFlag(values []string) ([]string, error) {
	var out []string
	for _, v := range values {
		parts := []string{v}
		if strings.Trim(v, " ") != "" {
			parts = strings.FieldsFunc(v, func(r rune) bool { return r == ' ' })
		}
		for _, sc := range parts {
			if err := provider.CheckScopeToken(sc); err != nil {
				return nil, fmt.Errorf("--scope %q: %v", sc, err)
			}
			out = append(out, sc)
		}
	}
	return out, nil
}

func (a *app) clientsCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "clients", Short: "OAuth2 clients"}
	var nc provider.NewClient
	var secondFactor bool
	var jwksFile string
	create := &cobra.Command{
		Use: "create", Short: "Register a client; prints it as JSON, with a generated secret shown this once", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// A --scope value is one scope or a space-separated list of
			// them (RFC 6749 §3.3's own form: `--scope "openid email"`); the
			// flag also repeats and takes commas. Each resulting token must
			// be 1*NQCHAR, and each --redirect-uri absolute, checked before
			// anything opens, naming the flag.
			scopes, err := splitScopeFlag(nc.Scopes)
			if err != nil {
				return err
			}
			nc.Scopes = scopes
			if jwksFile != "" {
				b, err := os.ReadFile(jwksFile)
				if err != nil {
					return fmt.Errorf("--jwks-file: %w", err)
				}
				nc.JWKS = b
			}
			for _, ru := range nc.RedirectURIs {
				if err := provider.CheckRedirectURI(ru); err != nil {
					return fmt.Errorf("--redirect-uri %q: %v", ru, err)
				}
			}
			if err := checkLogoutFlags(nc.Logout); err != nil {
				return err
			}
			p, _, err := a.openPlugin(cmd.Context())
			if err != nil {
				return err
			}
			defer p.Close()
			nc.RequireSecondFactor = &secondFactor
			c, secret, err := p.Provider.CreateClient(cmd.Context(), nc)
			if errors.Is(err, storage.ErrAlreadyExists) {
				return fmt.Errorf("client %q already exists", nc.ID)
			}
			if err != nil {
				return err
			}
			return a.printJSON(toClientJSON(c, secret))
		},
	}
	f := create.Flags()
	f.StringVar(&nc.ID, "id", "", "client id (generated when empty)")
	f.StringVar(&nc.Name, "name", "", "display name shown on the consent page")
	f.StringSliceVar(&nc.RedirectURIs, "redirect-uri", nil, "allowed redirect URI, absolute (repeat or comma-separate)")
	f.StringSliceVar(&nc.GrantTypes, "grant-type", nil, "authorization_code, refresh_token, client_credentials (default authorization_code,refresh_token)")
	f.StringSliceVar(&nc.Scopes, "scope", nil, "allowed scopes: RFC 6749 scope tokens, space-separated (\"openid email\"), comma-separated or repeated (default openid,offline_access,email,profile)")
	f.StringSliceVar(&nc.Audience, "audience", nil, "allowed audiences")
	f.BoolVar(&nc.Public, "public", false, "public client: no secret, PKCE required")
	f.BoolVar(&nc.SkipConsent, "skip-consent", false, "do not ask the user for consent (first-party clients)")
	f.BoolVar(&secondFactor, "second-factor", true, "require the emailed one-time password before issuing tokens")
	f.BoolVar(&nc.LoginUI, "login-ui", false, "a login UI: may pass the second factor with PUT /sessions/{id} passedLoginOTP:true and receive the login code in the response")
	f.BoolVar(&nc.IntrospectAny, "introspect-any", false, "a resource server: may introspect every token (otherwise only tokens issued to it or naming it in their audience)")
	f.StringVar(&nc.ClientURI, "client-uri", "", "the client's home page, an absolute http(s) URL; error pages link back to it")
	f.StringVar(&nc.Secret, "secret", "", "use this secret (stored with argon2id) instead of a generated one")
	f.StringVar(&nc.TokenEndpointAuthMethod, "token-endpoint-auth-method", "", "client_secret_basic (default), client_secret_post, private_key_jwt (with --jwks-file or --jwks-uri) or none (public)")
	f.StringVar(&jwksFile, "jwks-file", "", "private_key_jwt: a file holding the client's JWK Set (public keys; \"use\" \"sig\" or unset)")
	f.StringVar(&nc.JWKSURI, "jwks-uri", "", "private_key_jwt: the URL of the client's JWK Set")
	f.StringVar(&nc.IDTokenSignedResponseAlg, "id-token-signed-response-alg", "", "RS256 or ES256: the algorithm of this client's ID tokens (default oauth2.signing_alg; a key of it must exist: keys rotate --alg)")
	f.StringVar(&nc.TokenEndpointAuthSigningAlg, "token-endpoint-auth-signing-alg", "", "private_key_jwt: RS256 or ES256 (default: what the JWK Set's first signing key implies, else RS256)")
	addLogoutFlags(create, &nc.Logout)

	list := &cobra.Command{
		Use: "list", Short: "List clients as JSON", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, _, err := a.openPlugin(cmd.Context())
			if err != nil {
				return err
			}
			defer p.Close()
			cs, err := p.Store().ListClients(cmd.Context())
			if err != nil {
				return err
			}
			out := make([]clientJSON, 0, len(cs))
			for i := range cs {
				out = append(out, toClientJSON(&cs[i], ""))
			}
			return a.printJSON(out)
		},
	}
	del := &cobra.Command{
		Use: "delete CLIENT_ID", Short: "Delete a client and its tokens", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, _, err := a.openPlugin(cmd.Context())
			if err != nil {
				return err
			}
			defer p.Close()
			if err := p.Provider.DeleteClient(cmd.Context(), args[0]); errors.Is(err, storage.ErrNotFound) {
				return fmt.Errorf("no client %q", args[0])
			} else if err != nil {
				return err
			}
			fmt.Fprintf(a.out, "client %s deleted\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(create, list, del)
	return cmd
}

type userJSON struct {
	ID        string    `json:"id"`
	Email     string    `json:"email"`
	Disabled  bool      `json:"disabled"`
	CreatedAt time.Time `json:"created_at"`
	// EmailVerified: the user passed an emailed code or was created with
	// --email-verified.
	EmailVerified bool `json:"email_verified"`
}

func (a *app) usersCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "users", Short: "Local user accounts"}
	var email, password string
	var emailVerified bool
	create := &cobra.Command{
		Use: "create", Short: "Create a user; prints it as JSON with its uuid", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if email == "" || password == "" {
				return errors.New("--email and --password are required")
			}
			p, _, err := a.openPlugin(cmd.Context())
			if err != nil {
				return err
			}
			defer p.Close()
			newUser := p.Provider.CreateUser
			if emailVerified {
				newUser = p.Provider.CreateVerifiedUser
			}
			u, err := newUser(cmd.Context(), email, password)
			if errors.Is(err, storage.ErrAlreadyExists) {
				return fmt.Errorf("a user with email %q already exists", email)
			}
			if err != nil {
				return err
			}
			return a.printJSON(userJSON{u.ID, u.Email, u.Disabled, u.CreatedAt, u.EmailVerified})
		},
	}
	create.Flags().StringVar(&email, "email", "", "the user's email address")
	create.Flags().StringVar(&password, "password", "", "the user's password (at least 8 characters)")
	create.Flags().BoolVar(&emailVerified, "email-verified", false, "the address is known to be the user's: email_verified is true before any emailed code")
	list := &cobra.Command{
		Use: "list", Short: "List users as JSON", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, _, err := a.openPlugin(cmd.Context())
			if err != nil {
				return err
			}
			defer p.Close()
			us, err := p.Store().ListUsers(cmd.Context())
			if err != nil {
				return err
			}
			out := make([]userJSON, 0, len(us))
			for _, u := range us {
				out = append(out, userJSON{u.ID, u.Email, u.Disabled, u.CreatedAt, u.EmailVerified})
			}
			return a.printJSON(out)
		},
	}
	disable := &cobra.Command{
		Use: "disable USER_ID", Short: "Disable a user: no new logins; every login session ends and every token of the user is revoked at once", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, _, err := a.openPlugin(cmd.Context())
			if err != nil {
				return err
			}
			defer p.Close()
			if err := p.Provider.DisableUser(cmd.Context(), args[0]); errors.Is(err, storage.ErrNotFound) {
				return fmt.Errorf("no user %q", args[0])
			} else if err != nil {
				return err
			}
			fmt.Fprintf(a.out, "user %s disabled\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(create, list, disable)
	return cmd
}

func (a *app) keysCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "keys", Short: "ID-token signing keys"}
	var alg string
	rotate := &cobra.Command{
		Use: "rotate", Short: "Add a new signing key (of --alg); old public keys of that algorithm stay published until their tokens expire", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if alg != "" && alg != provider.AlgRS256 && alg != provider.AlgES256 {
				return fmt.Errorf("--alg %q: want %s or %s", alg, provider.AlgRS256, provider.AlgES256)
			}
			p, _, err := a.openPlugin(cmd.Context())
			if err != nil {
				return err
			}
			defer p.Close()
			if alg == "" {
				alg = p.Provider.Keys.DefaultAlgorithm()
			}
			kid, err := p.Provider.Keys.RotateAlg(cmd.Context(), alg)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.out, "new signing key %s (%s)\n", kid, alg)
			return nil
		},
	}
	rotate.Flags().StringVar(&alg, "alg", "", "RS256 or ES256 (default oauth2.signing_alg); keys of the other algorithm keep signing for the clients that chose it")
	cmd.AddCommand(rotate, &cobra.Command{
		Use: "list", Short: "List published keys as a JWKS", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, _, err := a.openPlugin(cmd.Context())
			if err != nil {
				return err
			}
			defer p.Close()
			set, err := p.Provider.Keys.JWKS(cmd.Context())
			if err != nil {
				return err
			}
			return a.printJSON(set)
		},
	})
	return cmd
}

func (a *app) auditCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Audit events"}
	var user string
	var limit int
	list := &cobra.Command{
		Use: "list", Short: "Print audit events, newest first, as JSON", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, _, err := a.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer s.Close()
			evs, err := s.ListAuditEvents(cmd.Context(), user, limit)
			if err != nil {
				return err
			}
			if evs == nil {
				evs = []storage.AuditEvent{}
			}
			return a.printJSON(evs)
		},
	}
	list.Flags().StringVar(&user, "user", "", "only this user's events")
	list.Flags().IntVar(&limit, "limit", 100, "at most this many events")
	cmd.AddCommand(list)
	return cmd
}

func (a *app) purgeCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "purge",
		Short: "Delete what expired, once (what each server does every database.purge_interval); prints {\"deleted\":N}",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, cfg, err := a.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer s.Close()
			n, err := provider.PurgeStore(cmd.Context(), s, time.Now(), cfg.Database)
			if err != nil {
				return err
			}
			return a.printJSON(map[string]int64{"deleted": n})
		},
	}
}
