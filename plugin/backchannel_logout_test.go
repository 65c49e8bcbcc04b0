package plugin_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"github.com/otpstep/otpstep/plugin/plugintest"
	"github.com/otpstep/otpstep/provider"
	"github.com/otpstep/otpstep/storage"
)

// logoutReceiver is a relying party's back-channel logout endpoint: it
// answers the statuses it is told to, in order (then 200), and hands each
// logout_token it received to the test.
type logoutReceiver struct {
	*httptest.Server
	mu       sync.Mutex
	statuses []int
	got      chan string
}

func newLogoutReceiver(t *testing.T, statuses ...int) *logoutReceiver {
	t.Helper()
	lr := &logoutReceiver{statuses: statuses, got: make(chan string, 16)}
	lr.Server = httptest.NewServer(lr.handler())
	t.Cleanup(lr.Close)
	return lr
}

// newDownLogoutReceiver is a receiver whose address refuses connections
// until up is called (then it answers 200).
func newDownLogoutReceiver(t *testing.T) (lr *logoutReceiver, url string, up func()) {
	t.Helper()
	lr = &logoutReceiver{got: make(chan string, 16)}
	lr.Server = httptest.NewUnstartedServer(lr.handler())
	addr := lr.Listener.Addr().String()
	if err := lr.Listener.Close(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(lr.Close)
	return lr, "http://" + addr, func() {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("the receiver's address is taken: %v", err)
		}
		lr.Listener = ln
		lr.Start()
	}
}

func (lr *logoutReceiver) handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		lr.mu.Lock()
		status := http.StatusOK
		if len(lr.statuses) > 0 {
			status, lr.statuses = lr.statuses[0], lr.statuses[1:]
		}
		lr.mu.Unlock()
		lr.got <- r.PostFormValue("logout_token")
		w.WriteHeader(status)
	})
}

// next is the next logout token received (the test fails after 20s).
func (lr *logoutReceiver) next(t *testing.T) string {
	t.Helper()
	select {
	case tok := <-lr.got:
		return tok
	case <-time.After(20 * time.Second):
		t.Fatal("no logout token arrived")
		return ""
	}
}

// none fails when a logout token is waiting.
func (lr *logoutReceiver) none(t *testing.T) {
	t.Helper()
	select {
	case tok := <-lr.got:
		t.Fatalf("a logout token too many: %s", tok)
	default:
	}
}

// logoutToken is what a relying party reads of a verified logout token.
type logoutToken struct {
	JTI    string                    `json:"jti"`
	Sid    string                    `json:"sid"`
	Events map[string]map[string]any `json:"events"`
	Nonce  *string                   `json:"nonce"`
	Iat    int64                     `json:"iat"`
}

// verifyLogoutToken checks raw as a relying party does (Back-Channel Logout
// 1.0 §2.6) against the provider's JWKS through go-oidc: signature, iss,
// aud = the client, exp; typ logout+jwt, the event, sid, sub, no nonce.
func (r *rp) verifyLogoutToken(t *testing.T, srv *plugintest.Server, raw string) logoutToken {
	t.Helper()
	idt, err := r.provider.Verifier(&oidc.Config{ClientID: r.conf.ClientID, Now: srv.Clock.Now}).Verify(context.Background(), raw)
	if err != nil {
		t.Fatalf("logout token: %v", err)
	}
	jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	if typ := jws.Signatures[0].Header.ExtraHeaders[jose.HeaderType]; typ != provider.LogoutTokenType {
		t.Fatalf("typ = %v", typ)
	}
	var lt logoutToken
	if err := idt.Claims(&lt); err != nil {
		t.Fatal(err)
	}
	if _, ok := lt.Events[provider.BackchannelLogoutEvent]; !ok || lt.Sid == "" || lt.JTI == "" || lt.Nonce != nil || idt.Subject != r.userID {
		t.Fatalf("logout token claims: sub %s %+v", idt.Subject, lt)
	}
	return lt
}

// newBackchannelRP is a relying party with a back channel at lr.
func newBackchannelRP(t *testing.T, srv *plugintest.Server, lr *logoutReceiver) *rp {
	t.Helper()
	return newRP(t, srv, provider.NewClient{Logout: storage.ClientLogout{BackchannelLogoutURI: lr.URL + "/backchannel", BackchannelLogoutSessionRequired: true}})
}

// A logout tells each client that got tokens for the session, once per
// client however often it got them, and no client without a back channel;
// discovery says so.
func TestBackchannelLogout_LogoutIsDeliveredOncePerClient(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv := plugintest.Start(t, dialect, nil)
		var meta struct {
			Supported bool `json:"backchannel_logout_supported"`
			Session   bool `json:"backchannel_logout_session_supported"`
		}
		lr, lr2 := newLogoutReceiver(t), newLogoutReceiver(t)
		r, r2 := newBackchannelRP(t, srv, lr), newBackchannelRP(t, srv, lr2)
		if err := r.provider.Claims(&meta); err != nil || !meta.Supported || !meta.Session {
			t.Fatalf("discovery: %+v %v", meta, err)
		}
		plain := newLogoutRP(t, srv)
		plain.email, plain.password, plain.userID = r.email, r.password, r.userID
		r2.email, r2.password, r2.userID = r.email, r.password, r.userID
		b := plugintest.NewBrowser(t)
		_, hint, idt := r.signIn(t, b)
		r.signIn(t, b) // the same session, tokens again
		r2.signIn(t, b)
		plain.signIn(t, b)
		var claims struct {
			Sid string `json:"sid"`
		}
		if err := idt.Claims(&claims); err != nil {
			t.Fatal(err)
		}
		page := b.Follow(r.endSessionURL(t, map[string][]string{"id_token_hint": {hint}}), "")
		if page.Status != http.StatusOK {
			t.Fatalf("logout: %s", page)
		}
		lt := r.verifyLogoutToken(t, srv, lr.next(t))
		if lt.Sid != claims.Sid {
			t.Fatalf("sid = %q, want the session's %q", lt.Sid, claims.Sid)
		}
		if lt2 := r2.verifyLogoutToken(t, srv, lr2.next(t)); lt2.Sid != claims.Sid || lt2.JTI == lt.JTI {
			t.Fatalf("second client's token %+v", lt2)
		}
		// Nothing more, even once every lease is over; the user's end by
		// disable finds the session ended and queues nothing.
		waitSettled(t, srv, claims.Sid, 2)
		if err := srv.Plugin.Provider.DisableUser(context.Background(), r.userID); err != nil {
			t.Fatal(err)
		}
		srv.Clock.Advance(time.Hour)
		if n, err := srv.Plugin.Provider.DeliverBackchannelLogoutsOnce(context.Background()); n != 0 || err != nil {
			t.Fatalf("a second delivery round claimed %d (%v)", n, err)
		}
		rows, err := srv.Store.BackchannelLogouts(context.Background(), claims.Sid)
		if err != nil || len(rows) != 2 {
			t.Fatalf("queued rows %+v (%v), want one per client with a back channel", rows, err)
		}
		for _, row := range rows {
			if row.SettledAt == nil || row.LastError != "" || row.Attempts != 1 {
				t.Fatalf("row %+v: want delivered at the first attempt", row)
			}
		}
		lr.none(t)
		lr2.none(t)
	})
}

// A receiver that is down (503) gets the same logout again after the
// backoff; one that stays down past oauth2.backchannel_logout_max_age is
// given up and counted.
func TestBackchannelLogout_RedeliveredAfterTheReceiverWasDown(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv := plugintest.Start(t, dialect, nil)
		lr := newLogoutReceiver(t, http.StatusServiceUnavailable)
		r := newBackchannelRP(t, srv, lr)
		down := newLogoutReceiver(t, http.StatusServiceUnavailable, http.StatusServiceUnavailable, http.StatusServiceUnavailable)
		r2 := newBackchannelRP(t, srv, down)
		// Both sign in before the clock moves (fosite refuses an auth_time
		// ahead of its own clock).
		b, b2 := plugintest.NewBrowser(t), plugintest.NewBrowser(t)
		_, hint, _ := r.signIn(t, b)
		_, hint2, _ := r2.signIn(t, b2)

		b.Follow(r.endSessionURL(t, map[string][]string{"id_token_hint": {hint}}), "")
		first := r.verifyLogoutToken(t, srv, lr.next(t))
		waitRetry(t, srv, first.Sid)
		srv.Clock.Advance(time.Minute) // past the first backoff
		if _, err := srv.Plugin.Provider.DeliverBackchannelLogoutsOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		again := r.verifyLogoutToken(t, srv, lr.next(t))
		if again.JTI != first.JTI || again.Sid != first.Sid || again.Iat <= first.Iat {
			t.Fatalf("redelivery %+v, first %+v: want the same jti and sid, signed anew", again, first)
		}
		rows := waitSettled(t, srv, first.Sid, 1)
		if rows[0].Attempts != 2 || rows[0].LastError != "" {
			t.Fatalf("rows %+v", rows)
		}

		// Down for good: given up after the max age, counted.
		b2.Follow(r2.endSessionURL(t, map[string][]string{"id_token_hint": {hint2}}), "")
		lt := r2.verifyLogoutToken(t, srv, down.next(t))
		waitRetry(t, srv, lt.Sid)
		srv.Clock.Advance(srv.Plugin.Provider.Config().OAuth2.BackchannelLogoutMaxAge + time.Minute)
		if _, err := srv.Plugin.Provider.DeliverBackchannelLogoutsOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		rows = waitSettled(t, srv, lt.Sid, 1)
		if rows[0].LastError == "" {
			t.Fatalf("rows %+v: want given up", rows)
		}
		if got := counterValue(t, srv, "otpstep_backchannel_logout_given_up_total"); got != 1 {
			t.Fatalf("given up counted %v", got)
		}
		down.none(t)
	})
}

// A receiver that is not listening at all (connection refused) gets the
// logout once it listens again, after the backoff.
func TestBackchannelLogout_RedeliveredAfterTheReceiverRefusedConnections(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv := plugintest.Start(t, dialect, nil)
		lr, uri, up := newDownLogoutReceiver(t)
		r := newRP(t, srv, provider.NewClient{Logout: storage.ClientLogout{BackchannelLogoutURI: uri + "/backchannel"}})
		b := plugintest.NewBrowser(t)
		_, hint, idt := r.signIn(t, b)
		var claims struct {
			Sid string `json:"sid"`
		}
		if err := idt.Claims(&claims); err != nil {
			t.Fatal(err)
		}
		b.Follow(r.endSessionURL(t, map[string][]string{"id_token_hint": {hint}}), "")
		waitRetry(t, srv, claims.Sid)
		up()
		srv.Clock.Advance(time.Minute) // past the first backoff
		if _, err := srv.Plugin.Provider.DeliverBackchannelLogoutsOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		if lt := r.verifyLogoutToken(t, srv, lr.next(t)); lt.Sid != claims.Sid {
			t.Fatalf("sid %q, want %q", lt.Sid, claims.Sid)
		}
		rows := waitSettled(t, srv, claims.Sid, 1)
		if rows[0].Attempts != 2 || rows[0].LastError != "" {
			t.Fatalf("rows %+v: want delivered at the second attempt", rows)
		}
		lr.none(t)
	})
}

// waitSettled waits (20s at most) until login session sid has n queued
// logouts, all settled, and returns them.
func waitSettled(t *testing.T, srv *plugintest.Server, sid string, n int) []storage.BackchannelLogoutRow {
	t.Helper()
	return waitRows(t, srv, sid, func(rows []storage.BackchannelLogoutRow) bool {
		if len(rows) != n {
			return false
		}
		for _, r := range rows {
			if r.SettledAt == nil {
				return false
			}
		}
		return true
	})
}

// waitRetry waits until sid's one logout failed an attempt and waits for
// its retry (its failure written).
func waitRetry(t *testing.T, srv *plugintest.Server, sid string) {
	t.Helper()
	waitRows(t, srv, sid, func(rows []storage.BackchannelLogoutRow) bool {
		return len(rows) == 1 && rows[0].SettledAt == nil && rows[0].LastError != ""
	})
}

func waitRows(t *testing.T, srv *plugintest.Server, sid string, done func([]storage.BackchannelLogoutRow) bool) []storage.BackchannelLogoutRow {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		rows, err := srv.Store.BackchannelLogouts(context.Background(), sid)
		if err != nil {
			t.Fatal(err)
		}
		if done(rows) {
			return rows
		}
		if time.Now().After(deadline) {
			t.Fatalf("queued logouts of %s: %+v", sid, rows)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A logout queued by a process that stopped before it could deliver is
// delivered by the next one on the same database.
func TestBackchannelLogout_DeliveredAfterARestart(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		store := plugintest.NewStore(t, dialect)
		first := plugintest.StartOn(t, store, nil)
		lr := newLogoutReceiver(t, http.StatusServiceUnavailable)
		r := newBackchannelRP(t, first, lr)
		b := plugintest.NewBrowser(t)
		_, hint, _ := r.signIn(t, b)
		b.Follow(r.endSessionURL(t, map[string][]string{"id_token_hint": {hint}}), "")
		down := r.verifyLogoutToken(t, first, lr.next(t))
		waitRetry(t, first, down.Sid)
		first.HTTP.Close()
		if err := first.Plugin.Close(); err != nil {
			t.Fatal(err)
		}

		second := plugintest.StartOn(t, store, nil)
		second.Clock.Advance(time.Minute)
		if _, err := second.Plugin.Provider.DeliverBackchannelLogoutsOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		op, err := oidc.NewProvider(context.Background(), second.URL)
		if err != nil {
			t.Fatal(err)
		}
		r.srv, r.provider = second, op
		if lt := r.verifyLogoutToken(t, second, lr.next(t)); lt.JTI != down.JTI {
			t.Fatalf("after the restart: %+v, want jti %s", lt, down.JTI)
		}
	})
}

// Disabling the user and the purge of an expired session end sessions
// too, and tell the clients.
func TestBackchannelLogout_DisableAndPurgeDeliver(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv := plugintest.Start(t, dialect, nil)
		lr, lr2 := newLogoutReceiver(t), newLogoutReceiver(t)
		r, r2 := newBackchannelRP(t, srv, lr), newBackchannelRP(t, srv, lr2)
		_, _, idt := r.signIn(t, plugintest.NewBrowser(t))
		_, _, idt2 := r2.signIn(t, plugintest.NewBrowser(t))
		if err := srv.Plugin.Provider.DisableUser(context.Background(), r.userID); err != nil {
			t.Fatal(err)
		}
		var claims struct {
			Sid string `json:"sid"`
		}
		_ = idt.Claims(&claims)
		if lt := r.verifyLogoutToken(t, srv, lr.next(t)); lt.Sid != claims.Sid {
			t.Fatalf("disable: sid %q, want %q", lt.Sid, claims.Sid)
		}
		waitSettled(t, srv, claims.Sid, 1)

		// Expiry: the session expires, and the purge ends it.
		_ = idt2.Claims(&claims)
		srv.Clock.Advance(srv.Plugin.Provider.Config().Login.SessionLifespan + time.Minute)
		if _, err := srv.Plugin.Provider.PurgeExpired(context.Background()); err != nil {
			t.Fatal(err)
		}
		if lt := r2.verifyLogoutToken(t, srv, lr2.next(t)); lt.Sid != claims.Sid {
			t.Fatalf("purge: sid %q, want %q", lt.Sid, claims.Sid)
		}
		waitSettled(t, srv, claims.Sid, 1)
		// A second purge finds nothing more to tell.
		if _, err := srv.Plugin.Provider.PurgeExpired(context.Background()); err != nil {
			t.Fatal(err)
		}
		if n, _ := srv.Plugin.Provider.DeliverBackchannelLogoutsOnce(context.Background()); n != 0 {
			t.Fatalf("after the purge %d more", n)
		}
		lr.none(t)
		lr2.none(t)
	})
}

// counterValue is the value of the counter name on srv's registry.
func counterValue(t *testing.T, srv *plugintest.Server, name string) float64 {
	t.Helper()
	mfs, err := srv.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// A re-authentication (prompt=login here; an exceeded max_age alike) is a
// new login, which ends the browser's previous session: every client that
// got tokens for it is told, not only the one that asked, and the new
// session's tokens live on.
func TestBackchannelLogout_ReauthenticationEndsThePreviousSessionForEveryClient(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv := plugintest.Start(t, dialect, nil)
		lrA, lrB := newLogoutReceiver(t), newLogoutReceiver(t)
		a, bRP := newBackchannelRP(t, srv, lrA), newBackchannelRP(t, srv, lrB)
		bRP.email, bRP.password, bRP.userID = a.email, a.password, a.userID
		b := plugintest.NewBrowser(t)
		_, _, idt := a.signIn(t, b)
		bRP.signIn(t, b)
		var old struct {
			Sid string `json:"sid"`
		}
		if err := idt.Claims(&old); err != nil {
			t.Fatal(err)
		}

		verifier := oauth2.GenerateVerifier()
		back := a.login(t, b, a.conf.AuthCodeURL(randomString(12), oauth2.S256ChallengeOption(verifier), oidc.Nonce(randomString(12)),
			oauth2.SetAuthURLParam("prompt", "login")))
		tok, err := a.conf.Exchange(context.Background(), back.Query().Get("code"), oauth2.VerifierOption(verifier))
		if err != nil {
			t.Fatal(err)
		}
		if lt := bRP.verifyLogoutToken(t, srv, lrB.next(t)); lt.Sid != old.Sid {
			t.Fatalf("the other client was told about %q, want the previous session %q", lt.Sid, old.Sid)
		}
		if lt := a.verifyLogoutToken(t, srv, lrA.next(t)); lt.Sid != old.Sid {
			t.Fatalf("the asking client was told about %q, want the previous session %q", lt.Sid, old.Sid)
		}
		if a.introspect(t, tok.AccessToken)["active"] != true {
			t.Fatal("the new session's token is not active")
		}
		waitSettled(t, srv, old.Sid, 2)
		lrA.none(t)
		lrB.none(t)
	})
}
