package plugin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/otpstep/otpstep/plugin"
	"github.com/otpstep/otpstep/plugin/plugintest"
	"github.com/otpstep/otpstep/provider"
	"github.com/otpstep/otpstep/provider/config"
	"github.com/otpstep/otpstep/storage"
)

// hostAPI calls a plugin's user API at the host with a bearer token.
func hostAPI(t *testing.T, h *plugintest.Host, hp *plugintest.HostPlugin, method, path, token string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader = http.NoBody
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, h.URL+hp.Prefix+"/user/2024-3"+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("%s %s: %d %q", method, path, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode, m
}

// requireAAL2 checks the ID token of a login that passed the OTP.
func requireAAL2(t *testing.T, tok *oauth2.Token, u plugintest.HostUser) string {
	t.Helper()
	if got := plugintest.IDTokenClaim(t, tok, "sub"); got != u.ID {
		t.Fatalf("sub = %q, want the host's user id %q", got, u.ID)
	}
	if got := plugintest.IDTokenClaim(t, tok, "acr"); got != provider.ACRSecondFactor {
		t.Fatalf("acr = %q", got)
	}
	var amr []string
	_ = json.Unmarshal([]byte(plugintest.IDTokenClaim(t, tok, "amr")), &amr)
	if !slices.Equal(amr, []string{"pwd", "otp"}) {
		t.Fatalf("amr = %v", amr)
	}
	if plugintest.IDTokenClaim(t, tok, "auth_time") == "" {
		t.Fatal("no auth_time")
	}
	sid := plugintest.IDTokenClaim(t, tok, "sid")
	if sid == "" {
		t.Fatal("no sid")
	}
	return sid
}

// passOTPPage types the n-th mailed code on the plugin's OTP page and
// follows the browser back to the host's authorize endpoint.
func passOTPPage(t *testing.T, b *plugintest.Browser, hp *plugintest.HostPlugin, page *plugintest.Page, n int, u plugintest.HostUser) *plugintest.Page {
	t.Helper()
	if page.Status != http.StatusOK || page.URL.Path != hp.Prefix+"/login/otp" {
		t.Fatalf("want the OTP page under %s, got %s (steps %v)", hp.Prefix, page, b.Steps)
	}
	code := hp.Mail.Code(t, n, u.Email)
	return b.Submit(page, hp.Prefix+"/login/otp", url.Values{"otp": {code}, "return_to": {page.HiddenField("return_to")}}, plugintest.RedirectURI)
}

func TestEmbedded_SecondFactorThroughThePluginsPage(t *testing.T) {
	for _, form := range []struct {
		name         string
		functionForm bool
	}{{"RequireSecondFactor", false}, {"CheckAuthorize", true}} {
		t.Run(form.name, func(t *testing.T) {
			forEachDialect(t, func(t *testing.T, dialect string) {
				hp := &plugintest.HostPlugin{Prefix: "/mfa", Store: plugintest.NewStore(t, dialect), FunctionForm: form.functionForm}
				h := plugintest.StartHost(t, hp)
				u := h.NewUser(t)
				conf := h.ClientConf(hp, plugintest.HostRP, "openid", "email")
				b := plugintest.NewBrowser(t)
				verifier := oauth2.GenerateVerifier()

				page := h.HostLogin(t, b, hp, conf, u, verifier)
				for _, want := range []string{`action="/mfa/login/otp"`, `action="/mfa/login/otp/resend"`, `href="/mfa/static/otpstep.css`} {
					if !strings.Contains(page.Body, want) {
						t.Fatalf("OTP page lacks %s:\n%s", want, page.Body)
					}
				}
				if page.Header.Get("Content-Security-Policy") == "" {
					t.Fatal("the plugin's pages carry otpstep's security headers")
				}
				// Reloading the authorize URL while the code is pending sends
				// no second mail.
				page = b.Follow(h.URL+page.HiddenField("return_to"), plugintest.RedirectURI)
				page = passOTPPage(t, b, hp, page, 1, u)
				if n := len(hp.Mail.Messages()); n != 1 {
					t.Fatalf("%d mails, want 1", n)
				}
				tok := h.Exchange(t, conf, page, verifier)
				sid := requireAAL2(t, tok, u)

				claims, err := hp.Plugin.SessionClaims(context.Background(), sid)
				if err != nil {
					t.Fatal(err)
				}
				if claims.Subject != u.ID || !claims.SecondFactor || claims.ACR != "aal2" {
					t.Fatalf("SessionClaims = %+v", claims)
				}
				// The next authorize request, even prompt=none, is answered at once.
				verifier2 := oauth2.GenerateVerifier()
				page = b.Follow(conf.AuthCodeURL("state-abcdefgh", oauth2.S256ChallengeOption(verifier2), oauth2.SetAuthURLParam("nonce", "nonce-abcdefgh"), oauth2.SetAuthURLParam("prompt", "none")), plugintest.RedirectURI)
				if got := requireAAL2(t, h.Exchange(t, conf, page, verifier2), u); got != sid {
					t.Fatalf("sid %s, want the same session %s", got, sid)
				}
			})
		})
	}
}

func TestEmbedded_PromptNoneBeforeTheSecondFactorIsLoginRequired(t *testing.T) {
	for _, functionForm := range []bool{false, true} {
		hp := &plugintest.HostPlugin{Prefix: "/mfa", FunctionForm: functionForm}
		h := plugintest.StartHost(t, hp)
		u := h.NewUser(t)
		conf := h.ClientConf(hp, plugintest.HostRP, "openid")
		b := plugintest.NewBrowser(t)
		h.HostLogin(t, b, hp, conf, u, oauth2.GenerateVerifier()) // at the OTP page
		page := b.Follow(conf.AuthCodeURL("state-abcdefgh", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("prompt", "none"), oauth2.SetAuthURLParam("nonce", "nonce-abcdefgh")), plugintest.RedirectURI)
		if got := page.URL.Query().Get("error"); got != "login_required" {
			t.Fatalf("function form %v: error = %q (%s)", functionForm, got, page)
		}
	}
}

func TestEmbedded_SecondFactorThroughTheUserAPI(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		hp := &plugintest.HostPlugin{Prefix: "/mfa", Store: plugintest.NewStore(t, dialect)}
		h := plugintest.StartHost(t, hp)
		u := h.NewUser(t)
		b := plugintest.NewBrowser(t)

		// The login UI's own authorize request is not held (aal1 tokens with the sid).
		ui := h.ClientConf(hp, plugintest.HostLoginUI, "openid", "user:sessions:update", "user:otp:verify")
		verifier := oauth2.GenerateVerifier()
		uiTok := h.Exchange(t, ui, h.HostLogin(t, b, hp, ui, u, verifier), verifier)
		if got := plugintest.IDTokenClaim(t, uiTok, "acr"); got != "aal1" {
			t.Fatalf("login UI token acr = %q", got)
		}
		sid := plugintest.IDTokenClaim(t, uiTok, "sid")

		status, body := hostAPI(t, h, hp, http.MethodPut, "/sessions/"+sid, uiTok.AccessToken, map[string]any{"userId": u.ID, "passedLoginOTP": false})
		if status != http.StatusOK {
			t.Fatalf("PUT /sessions: %d %v", status, body)
		}
		code, _ := body["otp"].(string)
		if mailed := hp.Mail.Code(t, 1, u.Email); mailed != code {
			t.Fatalf("mailed %s, answered %s", mailed, code)
		}
		if status, body = hostAPI(t, h, hp, http.MethodPost, "/user/otp/verify", uiTok.AccessToken, map[string]any{"otp": "000000", "types": []string{"login"}}); status != http.StatusNotFound {
			t.Fatalf("wrong code: %d %v", status, body)
		}
		if status, body = hostAPI(t, h, hp, http.MethodPost, "/user/otp/verify", uiTok.AccessToken, map[string]any{"otp": code, "types": []string{"login"}}); status != http.StatusNoContent {
			t.Fatalf("verify: %d %v", status, body)
		}
		// The relying party's request in the same browser now passes, prompt=none.
		rp := h.ClientConf(hp, plugintest.HostRP, "openid")
		verifier = oauth2.GenerateVerifier()
		page := b.Follow(rp.AuthCodeURL("state-abcdefgh", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("nonce", "nonce-abcdefgh"), oauth2.SetAuthURLParam("prompt", "none")), plugintest.RedirectURI)
		if got := requireAAL2(t, h.Exchange(t, rp, page, verifier), u); got != sid {
			t.Fatalf("sid %s, want %s", got, sid)
		}
		// A token without a scope answers 403; none answers 401.
		if status, _ = hostAPI(t, h, hp, http.MethodPost, "/user/otp", uiTok.AccessToken, map[string]any{"password": "x"}); status != http.StatusForbidden {
			t.Fatalf("missing scope: %d", status)
		}
		if status, _ = hostAPI(t, h, hp, http.MethodPost, "/user/otp/verify", "not-a-token", map[string]any{"otp": code}); status != http.StatusUnauthorized {
			t.Fatalf("bad token: %d", status)
		}
	})
}

func TestEmbedded_TwoPluginsInOneProcessDoNotSeeEachOther(t *testing.T) {
	a := &plugintest.HostPlugin{Prefix: "/a", AuthorizePath: "/a-auth", Store: plugintest.NewStore(t, "sqlite")}
	b := &plugintest.HostPlugin{Prefix: "/b", AuthorizePath: "/b-auth", Store: plugintest.NewStore(t, "postgres")}
	h := plugintest.StartHost(t, a, b)
	u := h.NewUser(t)
	browser := plugintest.NewBrowser(t)

	// Through A: login, OTP page under /a, mail in A's mailbox only.
	confA := h.ClientConf(a, plugintest.HostRP, "openid")
	verifier := oauth2.GenerateVerifier()
	page := passOTPPage(t, browser, a, h.HostLogin(t, browser, a, confA, u, verifier), 1, u)
	sidA := requireAAL2(t, h.Exchange(t, confA, page, verifier), u)
	if n := len(b.Mail.Messages()); n != 0 {
		t.Fatalf("B's mailer sent %d mails for A's login", n)
	}

	// B, same browser: no login session there, the host asks for a login.
	confB := h.ClientConf(b, plugintest.HostRP, "openid")
	page = browser.Follow(confB.AuthCodeURL("state-abcdefgh", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("nonce", "nonce-abcdefgh")), plugintest.RedirectURI)
	if page.URL.Path != b.LoginPath {
		t.Fatalf("B saw A's session: %s", page)
	}
	if _, err := b.Plugin.SessionClaims(context.Background(), sidA); !errors.Is(err, plugin.ErrNoLogin) {
		t.Fatalf("B.SessionClaims(A's sid) = %v, want ErrNoLogin", err)
	}
	if _, err := b.Plugin.Store().GetUser(context.Background(), u.ID); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("B's database has A's user: %v", err)
	}
	// An access token for A's session means nothing to B's user API.
	ui := h.ClientConf(a, plugintest.HostLoginUI, "openid", "user:sessions:update")
	uiTok := h.Exchange(t, ui, browser.Follow(ui.AuthCodeURL("state-abcdefgh", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("nonce", "nonce-abcdefgh")), plugintest.RedirectURI), verifier)
	body := map[string]any{"userId": u.ID, "passedLoginOTP": true}
	if status, m := hostAPI(t, h, a, http.MethodPut, "/sessions/"+sidA, uiTok.AccessToken, body); status != http.StatusNoContent {
		t.Fatalf("A: %d %v", status, m)
	}
	if status, m := hostAPI(t, h, b, http.MethodPut, "/sessions/"+sidA, uiTok.AccessToken, body); status != http.StatusUnauthorized {
		t.Fatalf("B answered A's token with %d %v, want 401 (unknown user)", status, m)
	}

	// B's own login, then closing A leaves B working.
	if err := a.Plugin.Close(); err != nil {
		t.Fatal(err)
	}
	page = browser.Submit(page, b.LoginPath, url.Values{"email": {u.Email}, "password": {u.Password}, "return_to": {page.HiddenField("return_to")}}, plugintest.RedirectURI)
	page = passOTPPage(t, browser, b, page, 1, u)
	if sidB := requireAAL2(t, h.Exchange(t, confB, page, verifier), u); sidB == sidA {
		t.Fatal("B reused A's sid")
	}
	if n := len(a.Mail.Messages()); n != 1 {
		t.Fatalf("A's mailer has %d mails, want only its own 1", n)
	}
}

func TestEmbedded_NoMailBeforeStart(t *testing.T) {
	hp := &plugintest.HostPlugin{Prefix: "/mfa", NoStart: true}
	h := plugintest.StartHost(t, hp)
	u := h.NewUser(t)
	b := plugintest.NewBrowser(t)
	page := h.HostLogin(t, b, hp, h.ClientConf(hp, plugintest.HostRP, "openid"), u, oauth2.GenerateVerifier())
	if page.URL.Path != "/mfa/login/otp" {
		t.Fatalf("not at the OTP page: %s", page)
	}
	// The code is queued, and nothing runs to deliver it.
	if n := len(hp.Mail.Messages()); n != 0 {
		t.Fatalf("%d mails before Start", n)
	}
	if err := hp.Plugin.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	hp.Mail.Code(t, 1, u.Email)
}

func TestEmbedded_MountLeavesTheHostsRoutesAlone(t *testing.T) {
	hp := &plugintest.HostPlugin{Prefix: "/mfa"}
	h := plugintest.StartHost(t, hp)
	get := func(path string) *http.Response {
		t.Helper()
		resp, err := http.Get(h.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := get("/host/ping"); resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Security-Policy") != "" || resp.Header.Get("X-Request-Id") != "" {
		t.Fatalf("host route: %d, headers %v", resp.StatusCode, resp.Header)
	}
	// Only the user API, the OTP pages and the link pages are the plugin's:
	// otpstep's own login (with an upstream too), OAuth2, admin and
	// operations routes are not mounted, and unknown paths, under the prefix
	// too, get the host's own 404.
	for _, path := range []string{"/nope", "/login", "/.well-known/openid-configuration", "/health/alive", "/mfa/nope", "/mfa/login", "/mfa/oauth2/auth",
		"/federated-identities/partner/link", "/mfa/federated-identities/partner/login", "/mfa/admin/users/x/federated-identities/partner"} {
		resp, err := http.Get(h.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), "host: no such page") {
			t.Fatalf("%s: %d %q, want the host's own 404", path, resp.StatusCode, body)
		}
	}
	if resp := get("/mfa/static/otpstep.css"); resp.StatusCode != http.StatusOK {
		t.Fatalf("static: %d", resp.StatusCode)
	}
}

func TestEmbedded_OTPPageWithoutLoginGoesBackToTheHost(t *testing.T) {
	hp := &plugintest.HostPlugin{Prefix: "/mfa"}
	h := plugintest.StartHost(t, hp)
	jar, _ := cookiejar.New(nil)
	c := plugintest.NoRedirectClient(jar)
	for _, tc := range []struct {
		returnTo     string
		wantStatus   int
		wantLocation string
	}{
		{"/oauth2/auth?client_id=rp", http.StatusSeeOther, "/oauth2/auth?client_id=rp"},
		{"", http.StatusBadRequest, ""},
		{"https://evil.example/oauth2/auth", http.StatusBadRequest, ""},
		{"/elsewhere", http.StatusBadRequest, ""},
	} {
		resp, err := c.Get(h.URL + "/mfa/login/otp?" + url.Values{"return_to": {tc.returnTo}}.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.wantStatus || resp.Header.Get("Location") != tc.wantLocation {
			t.Fatalf("return_to %q: %d → %q", tc.returnTo, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
}

func TestEmbedded_HostKeepsTheSID(t *testing.T) {
	hp := &plugintest.HostPlugin{Prefix: "/mfa"}
	hp.Options = func(o *plugin.Options) {
		o.SessionFromRequest = func(r *http.Request) string {
			c, err := r.Cookie(hp.HostSIDCookie())
			if err != nil {
				return ""
			}
			return c.Value
		}
	}
	h := plugintest.StartHost(t, hp)
	u := h.NewUser(t)
	conf := h.ClientConf(hp, plugintest.HostRP, "openid")
	b := plugintest.NewBrowser(t)
	verifier := oauth2.GenerateVerifier()
	page := passOTPPage(t, b, hp, h.HostLogin(t, b, hp, conf, u, verifier), 1, u)
	requireAAL2(t, h.Exchange(t, conf, page, verifier), u)
	hostURL, _ := url.Parse(h.URL)
	for _, c := range b.Client.Jar.Cookies(hostURL) {
		if c.Name == "otpstep_mfa" {
			t.Fatal("the plugin set its cookie although the host keeps the sid")
		}
	}
}

func TestEmbedded_BeginAndEndLogin(t *testing.T) {
	hp := &plugintest.HostPlugin{Prefix: "/mfa"}
	h := plugintest.StartHost(t, hp)
	ctx := context.Background()
	u := h.NewUser(t)
	p := hp.Plugin

	for _, bad := range []plugin.User{{Email: u.Email}, {ID: u.ID, Email: "no-at-sign"}} {
		if _, err := p.BeginLogin(ctx, nil, nil, bad); err == nil {
			t.Fatalf("BeginLogin(%+v) succeeded", bad)
		}
	}
	sid, err := p.BeginLogin(ctx, nil, nil, plugin.User{ID: u.ID, Email: u.Email})
	if err != nil {
		t.Fatal(err)
	}
	claims, err := p.SessionClaims(ctx, sid)
	if err != nil {
		t.Fatal(err)
	}
	if claims.ACR != "aal1" || !slices.Equal(claims.AMR, []string{"pwd"}) || claims.SecondFactor || claims.Subject != u.ID {
		t.Fatalf("claims after BeginLogin = %+v", claims)
	}
	// A second login of the same browser ends the first session.
	rec := &cookieRecorder{header: http.Header{}}
	req, _ := http.NewRequest(http.MethodPost, h.URL+"/login", nil)
	sid1, err := p.BeginLogin(ctx, rec, req, plugin.User{ID: u.ID, Email: u.Email}, "pwd", "hwk")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range (&http.Response{Header: rec.header}).Cookies() {
		req.AddCookie(c)
	}
	rec2 := &cookieRecorder{header: http.Header{}}
	sid2, err := p.BeginLogin(ctx, rec2, req, plugin.User{ID: u.ID, Email: u.Email})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.SessionClaims(ctx, sid1); !errors.Is(err, plugin.ErrNoLogin) {
		t.Fatalf("first session still alive: %v", err)
	}
	// EndLogin ends the browser's session.
	req, _ = http.NewRequest(http.MethodPost, h.URL+"/logout", nil)
	for _, c := range (&http.Response{Header: rec2.header}).Cookies() {
		req.AddCookie(c)
	}
	if err := p.EndLogin(ctx, &cookieRecorder{header: http.Header{}}, req); err != nil {
		t.Fatal(err)
	}
	if _, err := p.SessionClaims(ctx, sid2); !errors.Is(err, plugin.ErrNoLogin) {
		t.Fatalf("session alive after EndLogin: %v", err)
	}
	// A user disabled in otpstep cannot begin a login.
	if err := p.Store().SetUserDisabled(ctx, u.ID, true); err != nil {
		t.Fatal(err)
	}
	if _, err := p.BeginLogin(ctx, nil, nil, plugin.User{ID: u.ID, Email: u.Email}); !errors.Is(err, plugin.ErrUserDisabled) {
		t.Fatalf("disabled user: %v", err)
	}
}

// cookieRecorder is a ResponseWriter that keeps only headers.
type cookieRecorder struct{ header http.Header }

func (c *cookieRecorder) Header() http.Header         { return c.header }
func (c *cookieRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (c *cookieRecorder) WriteHeader(int)             {}

// Embedded, the browser links an upstream identity under the plugin's
// prefix: the confirmation page and its Link button, the upstream's redirect
// back to the callback under the prefix, the link in the plugin's database.
// The host's login passes the password only: the link route, GET and POST
// alike, sends the browser to the plugin's OTP page under the prefix and
// starts nothing, and the right code brings it back to the confirmation
// page. Signing in with an upstream stays otpstep's own (the host owns the
// login).
func TestEmbedded_LinkAnUpstreamIdentityInTheBrowser(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		up := plugintest.Start(t, dialect, func(c *plugin.Config) { c.Login.CookieName = "upstream_session" })
		clientID, secret := "host-at-upstream-"+plugintest.RandomString(6), plugintest.RandomString(24)
		hp := &plugintest.HostPlugin{Prefix: "/mfa", Store: plugintest.NewStore(t, dialect)}
		hp.Options = func(o *plugin.Options) {
			o.Config.Upstreams = []config.Upstream{{Name: "partner", Issuer: up.URL, ClientID: clientID, ClientSecret: secret, Scopes: []string{"openid", "email"}}}
		}
		h := plugintest.StartHost(t, hp)
		callback := h.URL + "/mfa/federated-identities/partner/callback"
		up.NewClientWith(t, provider.NewClient{ID: clientID, Secret: secret, RedirectURIs: []string{callback}})
		u, upAlice := h.NewUser(t), up.NewUser(t)
		b := plugintest.NewBrowser(t)
		linkURL := h.URL + "/mfa/federated-identities/partner/link"

		// Before the host's login: the plugin answers (it cannot send the
		// browser to the host's login), and starts nothing.
		if page := b.Follow(linkURL, ""); page.Status != http.StatusUnauthorized || !strings.Contains(page.Body, "please sign in again") ||
			!strings.Contains(page.Body, `href="/mfa/static/otpstep.css`) {
			t.Fatalf("link without a login: %s", page)
		}
		if page := b.Follow(h.URL+"/mfa/federated-identities/nobody/link", ""); page.Status != http.StatusNotFound {
			t.Fatalf("unknown provider: %s", page)
		}

		// The host's login; its authorize request is held at the OTP page
		// (the code is mail 1). The session has passed the password only.
		h.HostLogin(t, b, hp, h.ClientConf(hp, plugintest.HostRP, "openid"), u, oauth2.GenerateVerifier())
		cookieName := hp.Plugin.Provider.Config().Login.CookieName
		linkPath := "/mfa/federated-identities/partner/link"
		otpPage := otpBeforeLink(t, b, h.URL, "/mfa/login/otp", linkPath, cookieName, callback)
		post := b.Submit(otpPage, linkPath, url.Values{"return_to": {""}}, h.URL+"/mfa/login/otp")
		if post.Status != http.StatusSeeOther || post.URL.Path != "/mfa/login/otp" || post.URL.Query().Get("return_to") != linkPath {
			t.Fatalf("Link button without the second factor: %s", post)
		}
		if hasFlowCookie(t, b, cookieName, callback) {
			t.Fatal("the Link button started an upstream flow without the second factor")
		}
		if lis, err := hp.Store.ListLinkedIdentities(context.Background(), u.ID); err != nil || len(lis) != 0 {
			t.Fatalf("links before the code: %+v %v", lis, err)
		}
		backAtLink(t, b, otpPage, "/mfa/login/otp", hp.Mail.Code(t, 1, u.Email), "partner")
		if n := len(hp.Mail.Messages()); n != 1 {
			t.Fatalf("%d mails, want 1 (the live code is not sent again)", n)
		}

		confirm, action := linkConfirmation(t, b, linkURL, "partner")
		if action != "/mfa/federated-identities/partner/link" || confirm.Header.Get("Content-Security-Policy") == "" {
			t.Fatalf("confirmation page under the prefix: action %q, headers %v", action, confirm.Header)
		}
		resp, err := b.Client.PostForm(linkURL, url.Values{"csrf_token": {"forged-token"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("POST without the page's CSRF token: %d", resp.StatusCode)
		}

		page := b.Submit(confirm, action, url.Values{"return_to": {confirm.HiddenField("return_to")}}, callback)
		if page.Status != http.StatusOK || !strings.HasPrefix(page.URL.String(), up.URL+"/login") {
			t.Fatalf("the Link button did not reach the upstream's login: %s (steps %v)", page, b.Steps)
		}
		back := b.Submit(page, "/login", url.Values{"email": {upAlice.Email}, "password": {upAlice.Password}, "return_to": {page.HiddenField("return_to")}}, callback)
		if back.URL.Query().Get("code") == "" || !strings.HasPrefix(back.URL.String(), callback+"?") {
			t.Fatalf("the upstream did not come back to the callback under the prefix: %s", back)
		}
		if !hasFlowCookie(t, b, hp.Plugin.Provider.Config().Login.CookieName, callback) {
			t.Fatal("no flow cookie for the callback under the prefix")
		}
		done := b.Follow(back.URL.String(), "")
		if done.Status != http.StatusOK || !strings.Contains(done.Body, "Your partner account is now linked") {
			t.Fatalf("callback: %s", done)
		}
		li, err := hp.Store.GetLinkedIdentityBySubject(context.Background(), "partner", upAlice.ID)
		if err != nil || li.UserID != u.ID {
			t.Fatalf("link %+v %v", li, err)
		}
		// The callback replayed is refused.
		if again := b.Follow(back.URL.String(), ""); again.Status != http.StatusBadRequest {
			t.Fatalf("replayed callback: %s", again)
		}
	})
}

// Embedded, the host names its login UI (Options.LoginUIClient); a host
// client it does not name gets no code in the response and may not pass the
// second factor, even with user:sessions:update.
func TestEmbedded_OnlyTheHostsLoginUIPassesTheSecondFactor(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		hp := &plugintest.HostPlugin{Prefix: "/mfa", Store: plugintest.NewStore(t, dialect),
			Options: func(o *plugin.Options) { o.LoginUIClient = nil }} // no host client is a login UI
		h := plugintest.StartHost(t, hp)
		u := h.NewUser(t)
		ui := h.ClientConf(hp, plugintest.HostLoginUI, "openid", "user:sessions:update")
		verifier := oauth2.GenerateVerifier()
		uiTok := h.Exchange(t, ui, h.HostLogin(t, plugintest.NewBrowser(t), hp, ui, u, verifier), verifier)
		sid := plugintest.IDTokenClaim(t, uiTok, "sid")
		status, body := hostAPI(t, h, hp, http.MethodPut, "/sessions/"+sid, uiTok.AccessToken, map[string]any{"userId": u.ID, "passedLoginOTP": false})
		if status != http.StatusOK || body["otp"] != nil || body["expiresAt"] == nil {
			t.Fatalf("PUT false: %d %v, want 200 with expiresAt only", status, body)
		}
		status, body = hostAPI(t, h, hp, http.MethodPut, "/sessions/"+sid, uiTok.AccessToken, map[string]any{"userId": u.ID, "passedLoginOTP": true})
		if errs, _ := body["errors"].([]any); status != http.StatusForbidden || len(errs) != 1 || errs[0].(map[string]any)["code"] != "insufficient-scope" {
			t.Fatalf("PUT true: %d %v, want 403 insufficient-scope", status, body)
		}
		if claims, err := hp.Plugin.SessionClaims(context.Background(), sid); err != nil || claims.SecondFactor {
			t.Fatalf("session after the refused pass: %+v %v", claims, err)
		}
	})
}
