package plugin_test

import (
	"context"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/otpstep/otpstep/plugin"
	"github.com/otpstep/otpstep/plugin/plugintest"
)

// Ends are final: a logged-out session, a disabled user, a cookie from
// before a step up. Each test runs two instances on one database: what one
// instance ends, the other refuses at once.

// copyBrowser is a second browser holding a copy of b's cookies for srv.
func copyBrowser(t *testing.T, b *plugintest.Browser, srv *plugintest.Server) *plugintest.Browser {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	u, _ := url.Parse(srv.URL)
	jar.SetCookies(u, b.Client.Jar.Cookies(u))
	if len(jar.Cookies(u)) == 0 {
		t.Fatal("the browser has no cookie to copy")
	}
	return &plugintest.Browser{T: t, Client: plugintest.NoRedirectClient(jar)}
}

// promptNone is an authorize request of client with prompt=none, followed up
// to the redirect URI.
func promptNone(t *testing.T, b *plugintest.Browser, c *plugintest.Client) *plugintest.Page {
	t.Helper()
	return b.Follow(c.Conf.AuthCodeURL("state-"+plugintest.RandomString(9), oauth2.S256ChallengeOption(oauth2.GenerateVerifier()),
		oauth2.SetAuthURLParam("prompt", "none"), oauth2.SetAuthURLParam("nonce", plugintest.RandomString(12))), plugintest.RedirectURI)
}

// aal2Tokens has the browser (already past the second factor) get a code at
// prompt=none for c, and exchanges it.
func aal2Tokens(t *testing.T, srv *plugintest.Server, b *plugintest.Browser, c *plugintest.Client) *oauth2.Token {
	t.Helper()
	verifier := oauth2.GenerateVerifier()
	back := b.Follow(c.Conf.AuthCodeURL("state-"+plugintest.RandomString(9), oauth2.S256ChallengeOption(verifier),
		oauth2.SetAuthURLParam("prompt", "none"), oauth2.SetAuthURLParam("nonce", plugintest.RandomString(12))), plugintest.RedirectURI)
	code := back.URL.Query().Get("code")
	if code == "" {
		t.Fatalf("prompt=none: %s", back)
	}
	conf := c.Conf
	conf.Endpoint = oauth2.Endpoint{AuthURL: srv.URL + "/oauth2/auth", TokenURL: srv.URL + "/oauth2/token", AuthStyle: oauth2.AuthStyleInHeader}
	tok, err := conf.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	if acr := plugintest.IDTokenClaim(t, tok, "acr"); acr != "aal2" {
		t.Fatalf("acr = %q", acr)
	}
	return tok
}

// tokenState is what every endpoint that takes a token says of it on srv.
type tokenState struct {
	introspectActive bool
	userinfo         int
	refresh          string // "" for a new token, else the OAuth2 error code
}

func stateOf(t *testing.T, srv *plugintest.Server, c *plugintest.Client, tok *oauth2.Token) tokenState {
	t.Helper()
	var st tokenState
	_, out := postForm(t, srv.URL+"/oauth2/introspect", url.Values{"token": {tok.AccessToken}}, c.ID, c.Secret)
	st.introspectActive, _ = out["active"].(bool)
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	st.userinfo = resp.StatusCode
	conf := c.Conf
	conf.Endpoint.TokenURL = srv.URL + "/oauth2/token"
	if _, err := conf.TokenSource(context.Background(), &oauth2.Token{RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Hour)}).Token(); err != nil {
		st.refresh = oauthError(t, err)
	}
	return st
}

var ended = tokenState{introspectActive: false, userinfo: http.StatusUnauthorized, refresh: "invalid_grant"}

// startTwo runs two instances on one fresh database of the dialect.
func startTwo(t *testing.T, dialect string, mutate func(*plugin.Config)) (*plugintest.Server, *plugintest.Server) {
	t.Helper()
	a := plugintest.Start(t, dialect, mutate)
	return a, plugintest.StartOn(t, a.Store, mutate)
}

// A login UI (password-only client) and a relying party that requires the
// second factor; alice passes it through the API and the browser then holds
// an aal2 session.
type endsFixture struct {
	srv, other *plugintest.Server
	api        *apiClient
	loginUI    *plugintest.Client
	rp         *plugintest.Client
	login      *plugintest.Login
}

func newEndsFixture(t *testing.T, dialect string) *endsFixture {
	t.Helper()
	srv, other := startTwo(t, dialect, nil)
	f := &endsFixture{srv: srv, other: other, api: newAPIClient(t, srv),
		loginUI: srv.NewLoginUI(t, allUserScopes...), rp: srv.NewClient(t, true)}
	alice := srv.NewUser(t)
	f.login = srv.LoginWithPassword(t, f.loginUI, alice)
	if r := f.api.putSession(f.login.Token.AccessToken, f.login.SID, alice.ID, true); r.Status != http.StatusNoContent {
		t.Fatalf("PUT true: %d %s", r.Status, r.Body)
	}
	return f
}

func TestLogout_IsFinal(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		f := newEndsFixture(t, dialect)
		alice := f.login.User
		rpTok := aal2Tokens(t, f.srv, f.login.Browser, f.rp)
		if st := stateOf(t, f.other, f.rp, rpTok); !st.introspectActive || st.userinfo != 200 {
			t.Fatalf("before logout: %+v", st)
		}
		rpTok = aal2Tokens(t, f.srv, f.login.Browser, f.rp) // the refresh above rotated the first
		// A second login of alice, whose token may act on her other sessions.
		second := f.srv.LoginWithPassword(t, f.loginUI, alice)
		oldCookie := copyBrowser(t, f.login.Browser, f.srv)

		page := f.login.Browser.Follow(f.srv.URL+"/logout", "")
		f.login.Browser.Submit(page, "/logout", url.Values{}, "")

		// PUT on the ended session: 404 from a live token of the same user,
		// 401 from the ended session's own token; nothing recreates it.
		otherAPI := newAPIClient(t, f.other)
		for _, passed := range []bool{false, true} {
			if r := otherAPI.putSession(second.Token.AccessToken, f.login.SID, alice.ID, passed); r.Status != http.StatusNotFound || r.errorCode(t) != "not-found" {
				t.Fatalf("PUT %v on the ended session: %d %s", passed, r.Status, r.Body)
			}
			if r := otherAPI.putSession(f.login.Token.AccessToken, f.login.SID, alice.ID, passed); r.Status != http.StatusUnauthorized {
				t.Fatalf("PUT %v with the ended session's token: %d %s", passed, r.Status, r.Body)
			}
		}
		if r := otherAPI.verify(f.login.Token.AccessToken, "123456", "login"); r.Status != http.StatusUnauthorized {
			t.Fatalf("verify with the ended session's token: %d %s", r.Status, r.Body)
		}
		// The copy of the old cookie opens nothing, on either instance.
		for _, srv := range []*plugintest.Server{f.srv, f.other} {
			rp := *f.rp
			rp.Conf.Endpoint.AuthURL = srv.URL + "/oauth2/auth"
			if back := promptNone(t, oldCookie, &rp); back.URL.Query().Get("error") != "login_required" {
				t.Fatalf("prompt=none with the old cookie: %s", back)
			}
		}
		// The tokens issued to the session are inactive everywhere.
		if st := stateOf(t, f.other, f.rp, rpTok); st != ended {
			t.Fatalf("the RP's tokens after logout: %+v", st)
		}
		if st := stateOf(t, f.other, f.loginUI, f.login.Token); st != ended {
			t.Fatalf("the login UI's tokens after logout: %+v", st)
		}
		// The other session is untouched.
		if r := otherAPI.putSession(second.Token.AccessToken, second.SID, alice.ID, false); r.Status != http.StatusOK {
			t.Fatalf("PUT on the live session: %d %s", r.Status, r.Body)
		}
	})
}

// A login code that matches after its session expired is a 404, every time,
// not a store error (500).
func TestVerifyOTP_SessionGoneIs404(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv := plugintest.Start(t, dialect, func(c *plugin.Config) {
			c.Login.SessionLifespan = time.Hour
			c.OAuth2.AccessTokenLifespan = 3 * time.Hour
		})
		api := newAPIClient(t, srv)
		loginUI := srv.NewLoginUI(t, allUserScopes...)
		login := srv.LoginWithPassword(t, loginUI, srv.NewUser(t))
		srv.Clock.Advance(58 * time.Minute)
		r := api.putSession(login.Token.AccessToken, login.SID, login.User.ID, false)
		code, _ := r.json(t)["otp"].(string)
		if r.Status != http.StatusOK || code == "" {
			t.Fatalf("PUT: %d %s", r.Status, r.Body)
		}
		srv.Clock.Advance(3 * time.Minute) // the session expired, its code has not
		for i := range 2 {
			if r := api.verify(login.Token.AccessToken, code, "login"); r.Status != http.StatusNotFound || r.errorCode(t) != "not-found" {
				t.Fatalf("verify %d: %d %s", i, r.Status, r.Body)
			}
		}
	})
}

func TestDisableUser_IsFinal(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		f := newEndsFixture(t, dialect)
		rpTok := aal2Tokens(t, f.srv, f.login.Browser, f.rp)
		// A code issued before the disable, exchanged after.
		verifier := oauth2.GenerateVerifier()
		back := f.login.Browser.Follow(f.rp.Conf.AuthCodeURL("state-123456789", oauth2.S256ChallengeOption(verifier),
			oauth2.SetAuthURLParam("prompt", "none"), oauth2.SetAuthURLParam("nonce", "nonce-123456789")), plugintest.RedirectURI)
		code := back.URL.Query().Get("code")
		if code == "" {
			t.Fatalf("prompt=none: %s", back)
		}

		if err := f.srv.Plugin.Provider.DisableUser(context.Background(), f.login.User.ID); err != nil {
			t.Fatal(err)
		}

		if st := stateOf(t, f.other, f.rp, rpTok); st != ended {
			t.Fatalf("the RP's tokens after disable: %+v", st)
		}
		if st := stateOf(t, f.other, f.loginUI, f.login.Token); st != ended {
			t.Fatalf("the login UI's tokens after disable: %+v", st)
		}
		if r := newAPIClient(t, f.other).putSession(f.login.Token.AccessToken, f.login.SID, f.login.User.ID, false); r.Status != http.StatusUnauthorized {
			t.Fatalf("user API after disable: %d %s", r.Status, r.Body)
		}
		conf := f.rp.Conf
		conf.Endpoint.TokenURL = f.other.URL + "/oauth2/token"
		if _, err := conf.Exchange(context.Background(), code, oauth2.VerifierOption(verifier)); oauthError(t, err) != "invalid_grant" {
			t.Fatalf("code exchange after disable: %v", err)
		}
		if back := promptNone(t, f.login.Browser, f.rp); back.URL.Query().Get("error") != "login_required" {
			t.Fatalf("prompt=none after disable: %s", back)
		}
		if _, err := f.srv.Store.GetLoginSession(context.Background(), f.login.SID); err == nil {
			t.Fatal("the login session survived the disable")
		}
	})
}

// A copy of the session cookie taken between the password and the code does
// not become aal2 when the browser passes the OTP page: the step up issues a
// new cookie value.
func TestBrowser_CookieCopiedBeforeTheOTPIsNotAAL2(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv, smtpSrv := startWithSMTP(t, dialect, nil)
		rp := srv.NewClient(t, true)
		alice := srv.NewUser(t)
		b := plugintest.NewBrowser(t)
		page := b.Follow(rp.Conf.AuthCodeURL("state-123456789", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("nonce", "nonce-123456789")), plugintest.RedirectURI)
		page = b.Submit(page, "/login", url.Values{"email": {alice.Email}, "password": {alice.Password}, "return_to": {page.HiddenField("return_to")}}, plugintest.RedirectURI)
		if page.URL.Path != "/login/otp" {
			t.Fatalf("after the password: %s", page)
		}
		stolen := copyBrowser(t, b, srv)
		code := codeFrom(t, smtpSrv, 1, alice.Email)
		if back := b.Submit(page, "/login/otp", url.Values{"otp": {code}, "return_to": {page.HiddenField("return_to")}}, plugintest.RedirectURI); back.URL.Query().Get("code") == "" {
			t.Fatalf("after the code: %s", back)
		}

		if back := promptNone(t, stolen, rp); back.URL.Query().Get("code") != "" || back.URL.Query().Get("error") != "login_required" {
			t.Fatalf("prompt=none with the copy: %s", back)
		}
		aal2Tokens(t, srv, b, rp) // the browser itself goes on
	})
}

// An embedding host's tokens live in the host's storage, which ending the
// login session cannot revoke: the plugin's user API refuses them once
// their session ended.
func TestEmbedded_HostTokenOfAnEndedSessionIs401(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		hp := &plugintest.HostPlugin{Prefix: "/mfa", Store: plugintest.NewStore(t, dialect)}
		h := plugintest.StartHost(t, hp)
		u := h.NewUser(t)
		ui := h.ClientConf(hp, plugintest.HostLoginUI, "openid", "user:sessions:update", "user:otp:verify")
		verifier := oauth2.GenerateVerifier()
		uiTok := h.Exchange(t, ui, h.HostLogin(t, plugintest.NewBrowser(t), hp, ui, u, verifier), verifier)
		sid := plugintest.IDTokenClaim(t, uiTok, "sid")
		put := map[string]any{"userId": u.ID, "passedLoginOTP": false}
		if status, body := hostAPI(t, h, hp, http.MethodPut, "/sessions/"+sid, uiTok.AccessToken, put); status != http.StatusOK {
			t.Fatalf("PUT before the end: %d %v", status, body)
		}
		if err := hp.Plugin.Provider.EndLoginSession(context.Background(), sid); err != nil {
			t.Fatal(err)
		}
		if status, body := hostAPI(t, h, hp, http.MethodPut, "/sessions/"+sid, uiTok.AccessToken, put); status != http.StatusUnauthorized {
			t.Fatalf("PUT after the end: %d %v", status, body)
		}
	})
}
