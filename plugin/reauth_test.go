package plugin_test

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/otpstep/otpstep/plugin"
	"github.com/otpstep/otpstep/plugin/plugintest"
	"github.com/otpstep/otpstep/provider"
	"github.com/otpstep/otpstep/provider/mail/mailtest"
	"github.com/otpstep/otpstep/storage"
)

// loginClaims are the ID token claims re-authentication moves.
type loginClaims struct {
	AuthTime int64    `json:"auth_time"`
	ACR      string   `json:"acr"`
	AMR      []string `json:"amr"`
	SID      string   `json:"sid"`
}

// reauthFlow drives one browser through otpstep's pages for a client and
// verifies the ID tokens with go-oidc through the discovered JWKS.
type reauthFlow struct {
	t     *testing.T
	srv   *plugintest.Server
	smtp  *mailtest.Server
	op    *oidc.Provider
	b     *plugintest.Browser
	user  *plugintest.User
	mails int // codes mailed so far
}

func newReauthFlow(t *testing.T, dialect string) *reauthFlow {
	t.Helper()
	srv, smtpSrv := startWithSMTP(t, dialect, nil)
	op, err := oidc.NewProvider(context.Background(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return &reauthFlow{t: t, srv: srv, smtp: smtpSrv, op: op, b: plugintest.NewBrowser(t), user: srv.NewUser(t)}
}

// authorize sends the browser to /oauth2/auth for c with extra parameters.
func (f *reauthFlow) authorize(c *plugintest.Client, extra ...oauth2.AuthCodeOption) (page *plugintest.Page, state, verifier string) {
	state, verifier = randomString(12), oauth2.GenerateVerifier()
	opts := append([]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier), oidc.Nonce(randomString(12))}, extra...)
	return f.b.Follow(c.Conf.AuthCodeURL(state, opts...), rpRedirect), state, verifier
}

// password answers the login form, which page must be.
func (f *reauthFlow) password(page *plugintest.Page) *plugintest.Page {
	f.t.Helper()
	if page.Status != http.StatusOK || page.URL.Path != "/login" {
		f.t.Fatalf("expected the login form: %s (steps %v)", page, f.b.Steps)
	}
	return f.b.Submit(page, "/login", url.Values{"email": {f.user.Email}, "password": {f.user.Password}, "return_to": {page.HiddenField("return_to")}}, rpRedirect)
}

// code types the next mailed code on the OTP page, which page must be.
func (f *reauthFlow) code(page *plugintest.Page) *plugintest.Page {
	f.t.Helper()
	if page.Status != http.StatusOK || page.URL.Path != "/login/otp" {
		f.t.Fatalf("expected the OTP page: %s (steps %v)", page, f.b.Steps)
	}
	f.mails++
	code := codeFrom(f.t, f.smtp, f.mails, f.user.Email)
	return f.b.Submit(page, "/login/otp", url.Values{"otp": {code}, "return_to": {page.HiddenField("return_to")}}, rpRedirect)
}

// exchange redeems the code of the RP's redirect and returns the verified
// ID token's claims.
func (f *reauthFlow) exchange(c *plugintest.Client, page *plugintest.Page, state, verifier string) (loginClaims, string) {
	f.t.Helper()
	q := page.URL.Query()
	if !strings.HasPrefix(page.URL.String(), rpRedirect) || q.Get("state") != state || q.Get("code") == "" {
		f.t.Fatalf("expected the RP's redirect with a code: %s (steps %v)", page, f.b.Steps)
	}
	ctx := context.Background()
	conf := c.Conf
	conf.Endpoint = f.op.Endpoint()
	conf.Endpoint.AuthStyle = oauth2.AuthStyleInHeader
	tok, err := conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		f.t.Fatalf("exchange: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := f.op.Verifier(&oidc.Config{ClientID: c.ID, SupportedSigningAlgs: []string{oidc.RS256, oidc.ES256}}).Verify(ctx, raw)
	if err != nil {
		f.t.Fatalf("id token: %v", err)
	}
	var claims loginClaims
	if err := idt.Claims(&claims); err != nil {
		f.t.Fatal(err)
	}
	if idt.Subject != f.user.ID {
		f.t.Fatalf("sub = %s, want %s", idt.Subject, f.user.ID)
	}
	return claims, raw
}

// wantError checks that page is the RP's redirect with error and state.
func wantRedirectError(t *testing.T, page *plugintest.Page, state, errCode string) {
	t.Helper()
	q := page.URL.Query()
	if !strings.HasPrefix(page.URL.String(), rpRedirect) || q.Get("error") != errCode || q.Get("state") != state || q.Get("code") != "" {
		t.Fatalf("want %s with state %s at the redirect URI, got %s", errCode, state, page)
	}
}

// OIDC Core §3.1.2.1 prompt=login: a browser signed in at aal2 is asked
// for its password again, and then for an emailed code again (the new
// login is aal1 until it passes: a client that does not need the second
// factor gets aal1 from it meanwhile); the ID token's auth_time is the new
// login's, on the injected clock, a minute ahead of the wall clock.
func TestReauth_PromptLoginAsksPasswordAndCodeAgain(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		f := newReauthFlow(t, dialect)
		mfa := f.srv.NewClient(t, true)
		plain := f.srv.NewClient(t, false)
		start := f.srv.Clock.Now().Unix()

		page, state, verifier := f.authorize(mfa)
		first, _ := f.exchange(mfa, f.code(f.password(page)), state, verifier)
		if first.ACR != provider.ACRSecondFactor || first.AuthTime != start {
			t.Fatalf("first login: %+v, want aal2 at %d", first, start)
		}

		f.srv.Clock.Advance(time.Minute)
		page, state, verifier = f.authorize(mfa, oauth2.SetAuthURLParam("prompt", "login"))
		if !strings.Contains(page.Body, f.user.Email) {
			t.Fatalf("the login form names the signed-in account: %s", page.Body)
		}
		atOTP := f.password(page)

		// Between the password and the code the new session is aal1.
		p2, s2, v2 := f.authorize(plain, oauth2.SetAuthURLParam("prompt", "none"))
		between, _ := f.exchange(plain, p2, s2, v2)
		if between.ACR != provider.ACRPassword || strings.Join(between.AMR, ",") != "pwd" || between.AuthTime != start+60 || between.SID == first.SID {
			t.Fatalf("before the new code: %+v, want aal1, [pwd], auth_time %d, a new sid", between, start+60)
		}
		p3, s3, _ := f.authorize(mfa, oauth2.SetAuthURLParam("prompt", "none"))
		wantRedirectError(t, p3, s3, "login_required")

		again, _ := f.exchange(mfa, f.code(atOTP), state, verifier)
		if again.ACR != provider.ACRSecondFactor || strings.Join(again.AMR, ",") != "pwd,otp" || again.AuthTime != start+60 || again.SID != between.SID {
			t.Fatalf("after prompt=login: %+v, want aal2 at %d in session %s", again, start+60, between.SID)
		}
		if f.mails != 2 {
			t.Fatalf("%d codes mailed, want 2", f.mails)
		}
	})
}

// OIDC Core §3.1.2.1 max_age on the injected clock, a minute ahead of the
// wall clock (fosite's own checks compare auth_time with the wall clock and
// answered 500 "authentication time is in the future"): an older login
// with prompt=none is login_required at the redirect URI; a max_age the
// login meets is answered at once; without prompt=none the password and
// the code are asked again and auth_time moves.
func TestReauth_MaxAgeOnTheInjectedClock(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		f := newReauthFlow(t, dialect)
		mfa := f.srv.NewClient(t, true)
		start := f.srv.Clock.Now().Unix()

		page, state, verifier := f.authorize(mfa)
		first, _ := f.exchange(mfa, f.code(f.password(page)), state, verifier)

		f.srv.Clock.Advance(time.Minute)
		page, state, _ = f.authorize(mfa, oauth2.SetAuthURLParam("max_age", "1"), oauth2.SetAuthURLParam("prompt", "none"))
		wantRedirectError(t, page, state, "login_required")

		page, state, verifier = f.authorize(mfa, oauth2.SetAuthURLParam("max_age", "120"), oauth2.SetAuthURLParam("prompt", "none"))
		if met, _ := f.exchange(mfa, page, state, verifier); met.AuthTime != start || met.SID != first.SID {
			t.Fatalf("max_age met: %+v, want the first login (%d, %s)", met, start, first.SID)
		}

		page, state, verifier = f.authorize(mfa, oauth2.SetAuthURLParam("max_age", "1"))
		fresh, _ := f.exchange(mfa, f.code(f.password(page)), state, verifier)
		if fresh.AuthTime != start+60 || fresh.ACR != provider.ACRSecondFactor || fresh.SID == first.SID {
			t.Fatalf("after max_age: %+v, want aal2 at %d in a new session", fresh, start+60)
		}
		// The new login meets max_age=1 while the clock stands.
		page, state, verifier = f.authorize(mfa, oauth2.SetAuthURLParam("max_age", "1"), oauth2.SetAuthURLParam("prompt", "none"))
		if now, _ := f.exchange(mfa, page, state, verifier); now.AuthTime != start+60 || now.SID != fresh.SID {
			t.Fatalf("prompt=none after the new login: %+v", now)
		}
	})
}

// An ID token signed with a key that is not the default (ES256 beside the
// default RS256) is a valid id_token_hint at /oauth2/auth and at
// /oauth2/sessions/logout; a hint about another user is login_required.
func TestIDTokenHint_ES256BesideTheDefaultKey(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv := plugintest.Start(t, dialect, nil)
		ctx := context.Background()
		if _, err := srv.Plugin.Provider.Keys.RotateAlg(ctx, provider.AlgES256); err != nil {
			t.Fatal(err)
		}
		if got := srv.Plugin.Provider.Keys.DefaultAlgorithm(); got != provider.AlgRS256 {
			t.Fatalf("default algorithm %s, want RS256", got)
		}
		es := newRP(t, srv, provider.NewClient{IDTokenSignedResponseAlg: provider.AlgES256, Logout: storage.ClientLogout{PostLogoutRedirectURIs: []string{rpLoggedOut}}})
		b := plugintest.NewBrowser(t)
		_, hint, _ := es.signIn(t, b)
		if got := jwsAlg(t, hint); got != "ES256" {
			t.Fatalf("hint alg %s", got)
		}

		state := randomString(12)
		page := b.Follow(es.conf.AuthCodeURL(state, oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oidc.Nonce(randomString(12)),
			oauth2.SetAuthURLParam("prompt", "none"), oauth2.SetAuthURLParam("id_token_hint", hint)), rpRedirect)
		if page.URL.Query().Get("code") == "" || page.URL.Query().Get("state") != state {
			t.Fatalf("ES256 id_token_hint at /oauth2/auth: %s", page)
		}

		// Another user's ES256 hint in this browser.
		other := newRP(t, srv, provider.NewClient{IDTokenSignedResponseAlg: provider.AlgES256})
		_, otherHint, _ := other.signIn(t, plugintest.NewBrowser(t))
		state = randomString(12)
		page = b.Follow(es.conf.AuthCodeURL(state, oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oidc.Nonce(randomString(12)),
			oauth2.SetAuthURLParam("prompt", "none"), oauth2.SetAuthURLParam("id_token_hint", otherHint)), rpRedirect)
		wantRedirectError(t, page, state, "login_required")

		state = randomString(10)
		page = b.Follow(es.endSessionURL(t, url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {rpLoggedOut}, "state": {state}}), rpLoggedOut)
		if page.Status != http.StatusSeeOther || page.URL.String() != rpLoggedOut+"?state="+state {
			t.Fatalf("ES256 hint at the end_session_endpoint: %s (steps %v)", page, b.Steps)
		}
		if es.signedIn(t, b) {
			t.Fatal("still signed in after the logout")
		}
	})
}

// The embedded gate asks for a new login on prompt=login and an exceeded
// max_age as the standalone endpoint does: ErrReauthRequired (an
// ErrNoLogin) sends the browser to the host's login, the new session is
// aal1 until the OTP page passes it, auth_time moves; prompt=none with an
// old login is login_required at the redirect URI. The host's fosite
// compares auth_time with the wall clock, so the plugin's clock starts
// behind it.
func TestEmbedded_Reauthentication(t *testing.T) {
	for _, form := range []struct {
		name         string
		functionForm bool
	}{{"RequireSecondFactor", false}, {"CheckAuthorize", true}} {
		t.Run(form.name, func(t *testing.T) {
			forEachDialect(t, func(t *testing.T, dialect string) {
				clock := plugintest.NewClock()
				clock.Advance(-time.Minute)
				hp := &plugintest.HostPlugin{Prefix: "/mfa", Store: plugintest.NewStore(t, dialect), FunctionForm: form.functionForm,
					Options: func(o *plugin.Options) { o.Clock = clock.Now }}
				h := plugintest.StartHost(t, hp)
				u := h.NewUser(t)
				conf := h.ClientConf(hp, plugintest.HostRP, "openid")
				b := plugintest.NewBrowser(t)
				start := clock.Now().Unix()
				mails := 0
				authorize := func(extra ...oauth2.AuthCodeOption) (*plugintest.Page, string, string) {
					state, verifier := plugintest.RandomString(12), oauth2.GenerateVerifier()
					opts := append([]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("nonce", plugintest.RandomString(12))}, extra...)
					return b.Follow(conf.AuthCodeURL(state, opts...), plugintest.RedirectURI), state, verifier
				}
				loginAndCode := func(page *plugintest.Page) *plugintest.Page {
					t.Helper()
					if page.URL.Path != hp.LoginPath {
						t.Fatalf("expected the host's login: %s (steps %v)", page, b.Steps)
					}
					page = b.Submit(page, hp.LoginPath, url.Values{"email": {u.Email}, "password": {u.Password}, "return_to": {page.HiddenField("return_to")}}, plugintest.RedirectURI)
					mails++
					return passOTPPage(t, b, hp, page, mails, u)
				}
				claimsOf := func(page *plugintest.Page, state, verifier string) (int64, string) {
					t.Helper()
					if page.URL.Query().Get("state") != state {
						t.Fatalf("state lost: %s", page)
					}
					tok := h.Exchange(t, conf, page, verifier)
					sid := requireAAL2(t, tok, u) // the new session passed its own code
					at, err := strconv.ParseInt(plugintest.IDTokenClaim(t, tok, "auth_time"), 10, 64)
					if err != nil {
						t.Fatal(err)
					}
					return at, sid
				}

				page, state, verifier := authorize()
				at0, sid0 := claimsOf(loginAndCode(page), state, verifier)
				if at0 != start {
					t.Fatalf("auth_time %d, want %d", at0, start)
				}

				clock.Advance(2 * time.Second)
				page, state, _ = authorize(oauth2.SetAuthURLParam("max_age", "1"), oauth2.SetAuthURLParam("prompt", "none"))
				if q := page.URL.Query(); q.Get("error") != "login_required" || q.Get("state") != state {
					t.Fatalf("prompt=none, max_age exceeded: %s", page)
				}

				page, state, verifier = authorize(oauth2.SetAuthURLParam("prompt", "login"))
				at1, sid1 := claimsOf(loginAndCode(page), state, verifier)
				if at1 != start+2 || sid1 == sid0 {
					t.Fatalf("after prompt=login: auth_time %d sid %s, want %d in a new session", at1, sid1, start+2)
				}

				clock.Advance(2 * time.Second)
				page, state, verifier = authorize(oauth2.SetAuthURLParam("max_age", "1"))
				at2, sid2 := claimsOf(loginAndCode(page), state, verifier)
				if at2 != start+4 || sid2 == sid1 {
					t.Fatalf("after max_age: auth_time %d sid %s, want %d in a new session", at2, sid2, start+4)
				}

				// A max_age the login meets is answered at once.
				page, state, verifier = authorize(oauth2.SetAuthURLParam("max_age", "60"), oauth2.SetAuthURLParam("prompt", "none"))
				if at, sid := claimsOf(page, state, verifier); at != at2 || sid != sid2 {
					t.Fatalf("max_age met: auth_time %d sid %s", at, sid)
				}
				if mails != 3 {
					t.Fatalf("%d codes, want 3", mails)
				}
			})
		})
	}
}

// prompt=consent asks even a client registered to skip consent, and
// answers with the code once allowed; select_account, which otpstep does
// not offer, and none with another value are invalid_request before any
// login.
func TestPrompt_ConsentAndUnsupportedValues(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		f := newReauthFlow(t, dialect)
		c := f.srv.NewClient(t, false)
		for _, prompt := range []string{"select_account", "none login"} {
			page, state, _ := f.authorize(c, oauth2.SetAuthURLParam("prompt", prompt))
			wantRedirectError(t, page, state, "invalid_request")
		}
		page, state, verifier := f.authorize(c)
		first, _ := f.exchange(c, f.password(page), state, verifier)

		page, state, verifier = f.authorize(c, oauth2.SetAuthURLParam("prompt", "consent"))
		if page.Status != http.StatusOK || page.URL.Path != "/oauth2/auth" || !strings.Contains(page.Body, `name="consent"`) {
			t.Fatalf("prompt=consent for a skip-consent client: %s", page)
		}
		page = f.b.Submit(page, "/oauth2/consent", url.Values{"consent": {"allow"}, "authorize_query": {page.HiddenField("authorize_query")}}, rpRedirect)
		if again, _ := f.exchange(c, page, state, verifier); again.SID != first.SID {
			t.Fatalf("consent: %+v", again)
		}
	})
}
