package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"

	"github.com/otpstep/otpstep/provider"
	"github.com/otpstep/otpstep/storage"
)

// userScopes are the user API's scopes, all granted to the bench's user
// tokens, as a login UI's client would hold them.
var userScopes = []string{"user:sessions:update", "user:otp:verify", "user:otp:create"}

// benchUser is a user with a login session (sid) and an access token issued
// to it, as a login UI holds them after the password step.
type benchUser struct {
	user  *storage.User
	sid   string
	token string
	// sig is the token's key in oauth2_access_tokens (what the bearer check
	// looks up); floors look it up by it.
	sig string
}

// needServer is the error of scenarios that prepare through the in-process
// server.
func (e *env) needServer() error {
	if e.Plugin == nil {
		return errors.New("needs the in-process server (not available with -url)")
	}
	return nil
}

// benchUsers returns the -users users, created on first use: one INSERT
// each (all share one argon2id hash; no scenario logs in with a password),
// a login session, and a token minted for it.
func (e *env) benchUsers(ctx context.Context) ([]benchUser, error) {
	if e.users != nil {
		return e.users, nil
	}
	if err := e.needServer(); err != nil {
		return nil, err
	}
	n := max(e.f.users, 1)
	hash, err := provider.NewPasswordHash("bench password, never checked")
	if err != nil {
		return nil, err
	}
	suffix, err := randomHex(4)
	if err != nil {
		return nil, err
	}
	store := e.Plugin.Store()
	users := make([]benchUser, n)
	err = parallel(ctx, n, e.f.workers, func(ctx context.Context, i int) error {
		u := &storage.User{Email: fmt.Sprintf("bench-%s-%d@example.com", suffix, i), PasswordHash: hash}
		if err := store.CreateUser(ctx, u); err != nil {
			return err
		}
		ls, err := e.Plugin.Provider.StartLoginSession(ctx, u.ID, provider.AMRPassword)
		if err != nil {
			return err
		}
		token, sig, err := e.mintUserToken(ctx, ls)
		if err != nil {
			return err
		}
		users[i] = benchUser{user: u, sid: ls.ID, token: token, sig: sig}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("create %d users: %w", n, err)
	}
	e.users = users
	return users, nil
}

// mintUserToken issues an access token to login session ls with the user
// scopes, in process: the session is the one the code flow stores
// (Provider.NewSession: subject, sid, acr, amr), and fosite's
// client-credentials handler stores it, so the row is what the bearer
// check reads for a real login's token, without a browser and an argon2id
// password check per user. It returns the token and its storage key.
func (e *env) mintUserToken(ctx context.Context, ls *storage.LoginSession) (token, sig string, err error) {
	client, err := e.userClient(ctx)
	if err != nil {
		return "", "", err
	}
	p := e.Plugin.Provider
	now := time.Now().UTC()
	ar := fosite.NewAccessRequest(p.NewSession(ls, now))
	ar.RequestedAt = now
	ar.Client = client
	ar.GrantTypes = fosite.Arguments{"client_credentials"}
	ar.Form = url.Values{}
	for _, s := range userScopes {
		ar.AppendRequestedScope(s)
		ar.GrantScope(s)
	}
	resp, err := p.OAuth2.NewAccessResponse(ctx, ar)
	if err != nil {
		return "", "", fmt.Errorf("mint token: %w", err)
	}
	token = resp.GetAccessToken()
	return token, compose.NewOAuth2HMACStrategy(p.Fosite).AccessTokenSignature(ctx, token), nil
}

// userClient is the login UI's client the user tokens are issued to.
// client_credentials is among its grants only so that mintUserToken can use
// fosite's handler.
func (e *env) userClient(ctx context.Context) (*storage.Client, error) {
	if e.appClient != nil {
		return e.appClient, nil
	}
	no := false
	c, _, err := e.Plugin.Provider.CreateClient(ctx, provider.NewClient{
		Name:                "otpstep bench login UI",
		RedirectURIs:        []string{"http://127.0.0.1:1/callback"},
		GrantTypes:          []string{"authorization_code", "refresh_token", "client_credentials"},
		Scopes:              append([]string{"openid", "offline_access", "email"}, userScopes...),
		SkipConsent:         true,
		RequireSecondFactor: &no,
		LoginUI:             true,
	})
	if err != nil {
		return nil, fmt.Errorf("create login UI client: %w", err)
	}
	e.appClient = c
	return c, nil
}

// pool is the pgx pool floors run their statements on: a pool of the
// throwaway database as large as the server's (-max-open-conns).
func (e *env) pool(ctx context.Context) (*pgxpool.Pool, error) {
	if e.floorPool != nil {
		return e.floorPool, nil
	}
	if e.dsn == "" {
		return nil, errors.New("no database (-url)")
	}
	cfg, err := pgxpool.ParseConfig(e.dsn)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = int32(e.maxOpenConns)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	e.floorPool = pool
	*e.cleanups = append(*e.cleanups, pool.Close)
	return pool, nil
}

// analyze brings the planner statistics of the throwaway database up to
// date, as autovacuum does in a database in service (-analyze). Without it,
// tables filled by a scenario's preparation keep the statistics of empty
// tables, which can choose plans no running database would.
func (e *env) analyze(ctx context.Context) error {
	if !e.f.analyze || e.dsn == "" {
		return nil
	}
	db, err := e.pool(ctx)
	if err != nil {
		return err
	}
	if _, err := db.Exec(ctx, "ANALYZE"); err != nil {
		return fmt.Errorf("analyze: %w", err)
	}
	return nil
}

// parallel runs fn(0) alone, then fn(1..n-1) on up to workers goroutines,
// and returns the first error (the others stop taking work). Each call has
// prepTimeout.
//
// fn(0) runs alone so that the server's statements are prepared before they
// are used concurrently: gorm's prepared-statement cache (storage opens
// gorm with PrepareStmt) can deadlock when a statement is first prepared
// on the pool while every pooled connection is in a transaction waiting for
// that cache (see the bench's report). The timeout turns such a hang into an
// error: the preparation waiting for a connection gives up.
func parallel(ctx context.Context, n, workers int, fn func(ctx context.Context, i int) error) error {
	call := func(ctx context.Context, i int) error {
		ctx, cancel := context.WithTimeout(ctx, prepTimeout)
		defer cancel()
		return fn(ctx, i)
	}
	if n == 0 {
		return nil
	}
	if err := call(ctx, 0); err != nil {
		return err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	next.Store(1)
	var wg sync.WaitGroup
	for range min(max(workers, 1), n-1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := call(ctx, i); err != nil {
					cancel(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return context.Cause(ctx)
}

// prepTimeout bounds one step of a scenario's preparation.
const prepTimeout = time.Minute

// drainOutbox waits until the outbox is empty (the dispatcher delivered
// everything queued) or timeout, and returns how long it took and what is
// left.
func (e *env) drainOutbox(ctx context.Context, timeout time.Duration) (time.Duration, int, error) {
	start := time.Now()
	for {
		pending, _, err := e.Plugin.Store().OutboxBacklog(ctx)
		if err != nil || pending == 0 || time.Since(start) > timeout {
			return time.Since(start), pending, err
		}
		select {
		case <-ctx.Done():
			return time.Since(start), pending, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
