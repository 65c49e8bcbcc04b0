package plugin_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/google/uuid"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/otpstep/otpstep/plugin"
	"github.com/otpstep/otpstep/plugin/plugintest"
	"github.com/otpstep/otpstep/provider"
	"github.com/otpstep/otpstep/provider/config"
	"github.com/otpstep/otpstep/provider/mail/mailtest"
	"github.com/otpstep/otpstep/provider/upstream"
	"github.com/otpstep/otpstep/storage"
)

var federatedScopes = []string{"user:federated-identity:set", "user:federated-identity:read", "user:federated-identity:delete"}

// doAbs is apiClient.do for a path outside the user-API prefix (the admin
// API), with the same contract checks.
func (c *apiClient) doAbs(method, path, token, body string) apiResponse {
	c.t.Helper()
	req, err := http.NewRequest(method, c.srv.URL+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, data := c.v.CheckRoundTrip(c.t, http.DefaultClient, req)
	if resp.StatusCode >= 400 {
		if ct := resp.Header.Get("Content-Type"); ct != "application/vnd.api+json" {
			c.t.Fatalf("error with content type %q", ct)
		}
		if rid := resp.Header.Get("X-Request-Id"); rid == "" || !strings.Contains(string(data), `"id":"`+rid+`"`) {
			c.t.Fatalf("error id is not the request id %q: %s", rid, data)
		}
	}
	return apiResponse{Status: resp.StatusCode, Header: resp.Header, Body: data}
}

func (c *apiClient) putLink(token, provider, idToken string) apiResponse {
	c.t.Helper()
	b, _ := json.Marshal(map[string]string{"idToken": idToken})
	return c.do(http.MethodPut, "/federated-identities/"+provider, token, "application/json", string(b))
}

// upstreamIDToken signs u in at the upstream through Down's client there and
// returns the ID token the upstream issued for Down.
func upstreamIDToken(t *testing.T, f *plugintest.Federation, u *plugintest.User) string {
	t.Helper()
	raw, _ := f.Up.LoginWithPassword(t, f.UpClient, u).Token.Extra("id_token").(string)
	if raw == "" {
		t.Fatal("no id token from the upstream")
	}
	return raw
}

// wantError checks a JSON:API error's status, code and (when given) pointer.
func wantError(t *testing.T, resp apiResponse, status int, code, pointer string) {
	t.Helper()
	if resp.Status != status {
		t.Fatalf("status %d, want %d: %s", resp.Status, status, resp.Body)
	}
	e := resp.errorObject(t)
	if e["code"] != code || e["status"] != itoa(status) {
		t.Fatalf("error %v, want %s", e, code)
	}
	if pointer != "" {
		src, _ := e["source"].(map[string]any)
		if src == nil || (src["pointer"] != pointer && src["parameter"] != pointer) {
			t.Fatalf("source %v, want %s", src, pointer)
		}
	}
}

func auditTypes(t *testing.T, store *storage.Store, userID string) []string {
	t.Helper()
	events, err := store.ListAuditEvents(context.Background(), userID, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range events {
		reason, _ := e.Detail["reason"].(string)
		if reason != "" {
			out = append(out, e.Type+":"+reason)
		} else {
			out = append(out, e.Type)
		}
	}
	return out
}

func TestFederatedIdentities_PutWithIDTokenFromARealUpstream(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		f := plugintest.StartFederation(t, dialect, "partner", false, nil)
		api := newAPIClient(t, f.Down)
		client := f.Down.NewClient(t, false, federatedScopes...)
		weak := f.Down.NewClient(t, false, "user:federated-identity:read")
		alice, bob := f.Down.NewUser(t), f.Down.NewUser(t)
		aliceTok := f.Down.LoginPastSecondFactor(t, client, alice).Token.AccessToken
		bobTok := f.Down.LoginPastSecondFactor(t, client, bob).Token.AccessToken
		weakTok := f.Down.LoginPastSecondFactor(t, weak, alice).Token.AccessToken
		upAlice := f.Up.NewUser(t)
		idToken := upstreamIDToken(t, f, upAlice)
		// An ID token the upstream issued to another of its clients.
		otherAud, _ := f.Up.LoginWithPassword(t, f.Up.NewClient(t, false), upAlice).Token.Extra("id_token").(string)

		if resp := api.do(http.MethodGet, "/federated-identities", aliceTok, "", ""); resp.Status != 200 || string(resp.Body) != "{\"data\":[]}\n" {
			t.Fatalf("list before linking: %d %s", resp.Status, resp.Body)
		}
		wantError(t, api.putLink(aliceTok, "nobody", idToken), 404, "not-found", "")
		wantError(t, api.do(http.MethodPut, "/federated-identities/partner", aliceTok, "application/json", `{}`), 422, "validation-failed", "/idToken")
		wantError(t, api.putLink(aliceTok, "partner", "not-a-token"), 422, "validation-failed", "/idToken")
		wantError(t, api.putLink(aliceTok, "partner", otherAud), 422, "validation-failed", "/idToken")
		wantError(t, api.putLink(weakTok, "partner", idToken), 403, "insufficient-scope", "")
		wantError(t, api.putLink("", "partner", idToken), 401, "unauthorized", "")

		resp := api.putLink(aliceTok, "partner", idToken)
		if resp.Status != 204 || len(resp.Body) != 0 {
			t.Fatalf("link: %d %s", resp.Status, resp.Body)
		}
		listed := func() map[string]any {
			t.Helper()
			list := api.do(http.MethodGet, "/federated-identities", aliceTok, "", "")
			data, _ := list.json(t)["data"].([]any)
			if list.Status != 200 || len(data) != 1 {
				t.Fatalf("list: %d %s", list.Status, list.Body)
			}
			return data[0].(map[string]any)
		}
		link := listed()
		if link["provider"] != "partner" || link["subject"] != upAlice.ID || link["email"] != upAlice.Email || link["id"] == "" {
			t.Fatalf("link %v", link)
		}
		// Each ID token links once: linking again takes a new one.
		if again := api.putLink(aliceTok, "partner", upstreamIDToken(t, f, upAlice)); again.Status != 204 || listed()["id"] != link["id"] {
			t.Fatalf("linking again: %d %s", again.Status, again.Body)
		}
		// The upstream subject is alice's: bob cannot take it.
		wantError(t, api.putLink(bobTok, "partner", upstreamIDToken(t, f, upAlice)), 409, "identity-already-linked", "")

		list := api.do(http.MethodGet, "/federated-identities", aliceTok, "", "")
		data, _ := list.json(t)["data"].([]any)
		if list.Status != 200 || len(data) != 1 || data[0].(map[string]any)["subject"] != upAlice.ID {
			t.Fatalf("list: %d %s", list.Status, list.Body)
		}
		if got, err := f.Down.Store.GetLinkedIdentityBySubject(context.Background(), "partner", upAlice.ID); err != nil || got.UserID != alice.ID {
			t.Fatalf("stored link %+v %v", got, err)
		}

		if del := api.do(http.MethodDelete, "/federated-identities/partner", aliceTok, "", ""); del.Status != 204 || len(del.Body) != 0 {
			t.Fatalf("delete: %d %s", del.Status, del.Body)
		}
		wantError(t, api.do(http.MethodDelete, "/federated-identities/partner", aliceTok, "", ""), 404, "not-found", "")
		wantError(t, api.do(http.MethodDelete, "/federated-identities/nobody", aliceTok, "", ""), 404, "not-found", "")

		// Once unlinked, the subject is free for bob.
		if resp := api.putLink(bobTok, "partner", upstreamIDToken(t, f, upAlice)); resp.Status != 204 {
			t.Fatalf("bob after alice unlinked: %d %s", resp.Status, resp.Body)
		}

		got := auditTypes(t, f.Down.Store, alice.ID)
		for _, want := range []string{provider.AuditIdentityLinked, provider.AuditIdentityUnlinked, provider.AuditIdentityLinkRefused + ":wrong-audience", provider.AuditIdentityLinkRefused + ":malformed"} {
			if !slices.Contains(got, want) {
				t.Errorf("alice's audit trail %v lacks %s", got, want)
			}
		}
		if got := auditTypes(t, f.Down.Store, bob.ID); !slices.Contains(got, provider.AuditIdentityLinkRefused+":linked-to-another-user") || !slices.Contains(got, provider.AuditIdentityLinked) {
			t.Errorf("bob's audit trail %v", got)
		}
	})
}

// An upstream ID token whose iat is older than
// linked_identity.id_token_max_age (beyond the clock skew) is refused like
// any other failed check, however far ahead its exp; one just within links.
func TestFederatedIdentities_PutWithAnIDTokenOlderThanTheMaxAgeIs422(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		// The logins stay recent enough to link while the clock moves.
		f := plugintest.StartFederation(t, dialect, "partner", false, func(c *plugin.Config) { c.LinkedIdentity.ReauthMaxAge = time.Hour })
		api := newAPIClient(t, f.Down)
		client := f.Down.NewClient(t, false, federatedScopes...)
		alice, bob := f.Down.NewUser(t), f.Down.NewUser(t)
		aliceTok := f.Down.LoginPastSecondFactor(t, client, alice).Token.AccessToken
		bobTok := f.Down.LoginPastSecondFactor(t, client, bob).Token.AccessToken
		// Both issued now by the upstream (whose clock stands still), valid
		// for its id_token_lifespan of an hour.
		withinTok, tooOldTok := upstreamIDToken(t, f, f.Up.NewUser(t)), upstreamIDToken(t, f, f.Up.NewUser(t))
		maxAge := f.Down.Plugin.Provider.Config().LinkedIdentity.IDTokenMaxAge
		if maxAge != 10*time.Minute {
			t.Fatalf("default linked_identity.id_token_max_age = %s, want 10m", maxAge)
		}
		// The two servers' clocks started a moment apart; 30s of margin.
		f.Down.Clock.Advance(maxAge + upstream.DefaultLeeway - 30*time.Second)
		if resp := api.putLink(aliceTok, "partner", withinTok); resp.Status != 204 {
			t.Fatalf("an ID token within the max age: %d %s", resp.Status, resp.Body)
		}
		f.Down.Clock.Advance(time.Minute)
		wantError(t, api.putLink(bobTok, "partner", tooOldTok), 422, "validation-failed", "/idToken")
		if got := auditTypes(t, f.Down.Store, bob.ID); !slices.Contains(got, "identity.link_refused:"+string(upstream.ReasonTooOld)) {
			t.Errorf("bob's audit trail %v lacks the refusal", got)
		}
		if lis, err := f.Down.Store.ListLinkedIdentities(context.Background(), bob.ID); err != nil || len(lis) != 0 {
			t.Fatalf("bob's links %+v %v", lis, err)
		}
	})
}

// With linked_identity.required, the session API answers 401
// missing-linked-identity (exact body) until the user links; linking and
// listing are exempt from the policy, unlinking is not.
func TestFederatedIdentities_RequiredPolicyBeforeAndAfterLinking(t *testing.T) {
	f := plugintest.StartFederation(t, "sqlite", "partner", false, func(c *plugin.Config) { c.LinkedIdentity.Required = true })
	api := newAPIClient(t, f.Down)
	client := f.Down.NewLoginUI(t, append(allUserScopes, federatedScopes...)...)
	alice := f.Down.NewUser(t)
	tok := f.Down.LoginPastSecondFactor(t, client, alice).Token.AccessToken

	before := api.putSession(tok, uuid.NewString(), alice.ID, false)
	wantBody := `{"errors":[{"id":"` + before.Header.Get("X-Request-Id") + `","status":"401","code":"missing-linked-identity",` +
		`"title":"Missing linked identity for authorized access",` +
		`"detail":"Linked identity is needed to access this resource, please check why the user does not have a linked identity"}]}` + "\n"
	if before.Status != 401 || string(before.Body) != wantBody {
		t.Fatalf("before linking: %d %s\nwant %s", before.Status, before.Body, wantBody)
	}
	wantError(t, api.do(http.MethodDelete, "/federated-identities/partner", tok, "", ""), 401, "missing-linked-identity", "")
	if list := api.do(http.MethodGet, "/federated-identities", tok, "", ""); list.Status != 200 {
		t.Fatalf("list is exempt: %d %s", list.Status, list.Body)
	}
	if resp := api.putLink(tok, "partner", upstreamIDToken(t, f, f.Up.NewUser(t))); resp.Status != 204 {
		t.Fatalf("link is exempt: %d %s", resp.Status, resp.Body)
	}
	if after := api.putSession(tok, uuid.NewString(), alice.ID, false); after.Status != 200 {
		t.Fatalf("after linking: %d %s", after.Status, after.Body)
	}
}

// closedURL is an http URL on loopback where nothing listens.
func closedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + ln.Addr().String()
	_ = ln.Close()
	return u
}

// An upstream that is down does not stop the start; the routes that need it
// answer 503, everything else works.
func TestFederatedIdentities_UpstreamDownIs503AndNothingElseBreaks(t *testing.T) {
	srv, smtpSrv := startWithSMTP(t, "sqlite", func(c *plugin.Config) {
		c.Upstreams = []config.Upstream{{Name: "down", Issuer: closedURL(t), ClientID: "x", AllowLogin: true}}
	})
	api := newAPIClient(t, srv)
	client := srv.NewLoginUI(t, append(allUserScopes, federatedScopes...)...)
	alice := srv.NewUser(t)
	login := srv.LoginWithPassword(t, client, alice)
	tok := login.Token.AccessToken

	// A well-formed token: the keys are needed to check it.
	seg := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	idToken := seg(`{"alg":"RS256","kid":"k1"}`) + "." + seg(`{"sub":"s"}`) + "." + seg("signature")
	resp := api.putLink(srv.LoginPastSecondFactor(t, client, alice).Token.AccessToken, "down", idToken)
	wantError(t, resp, 503, "unavailable", "")
	if resp.Header.Get("Retry-After") == "" {
		t.Fatal("503 without Retry-After")
	}

	// The confirmation page (past the second factor) needs nothing of the
	// upstream; the Link button does.
	otpPage := otpBeforeLink(t, login.Browser, srv.URL, "/login/otp", "/federated-identities/down/link",
		srv.Plugin.Provider.Config().Login.CookieName, srv.URL+"/federated-identities/down/callback")
	backAtLink(t, login.Browser, otpPage, "/login/otp", codeFrom(t, smtpSrv, 1, alice.Email), "down")
	confirm, action := linkConfirmation(t, login.Browser, srv.URL+"/federated-identities/down/link", "down")
	page := login.Browser.Submit(confirm, action, url.Values{"return_to": {confirm.HiddenField("return_to")}}, "")
	if page.Status != 503 || page.Header.Get("Retry-After") == "" || !strings.Contains(page.Body, "cannot be reached") {
		t.Fatalf("link start: %s", page)
	}
	if page := plugintest.NewBrowser(t).Follow(srv.URL+"/federated-identities/down/login", ""); page.Status != 503 {
		t.Fatalf("login start: %s", page)
	}
	// The rest answers as usual.
	if r := api.putSession(tok, uuid.NewString(), alice.ID, false); r.Status != 200 {
		t.Fatalf("session API: %d %s", r.Status, r.Body)
	}
	if page := plugintest.NewBrowser(t).Follow(srv.URL+"/login", ""); page.Status != 200 || !strings.Contains(page.Body, "Sign in with down") {
		t.Fatalf("login page: %s", page)
	}
	if list := api.do(http.MethodGet, "/federated-identities", tok, "", ""); list.Status != 200 {
		t.Fatalf("list: %d %s", list.Status, list.Body)
	}
}

var linkFormAction = regexp.MustCompile(`<form method="post" action="([^"]+)">`)

// linkConfirmation GETs a link route in a signed-in browser and checks that
// it answers the confirmation page, naming the upstream, with a CSRF-protected
// Link button, and that nothing went to the upstream: it returns the page and
// its form's action.
func linkConfirmation(t *testing.T, b *plugintest.Browser, linkURL, provider string) (*plugintest.Page, string) {
	t.Helper()
	before := len(b.Steps)
	page := b.Follow(linkURL, "")
	m := linkFormAction.FindStringSubmatch(page.Body)
	if page.Status != http.StatusOK || m == nil || page.CSRFToken() == "" ||
		!strings.Contains(page.Body, "Link your "+provider+" account?") || !strings.Contains(page.Body, `<button type="submit">Link</button>`) {
		t.Fatalf("no link confirmation page: %s (steps %v)", page, b.Steps[before:])
	}
	if len(b.Steps) != before+1 {
		t.Fatalf("GET %s went on to %v", linkURL, b.Steps[before+1:])
	}
	return page, strings.ReplaceAll(m[1], "&amp;", "&")
}

// cookieNamed is the cookie the browser sends to u under name, or nil.
func cookieNamed(b *plugintest.Browser, u *url.URL, name string) *http.Cookie {
	for _, c := range b.Client.Jar.Cookies(u) {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// hasFlowCookie reports whether the browser carries an upstream flow
// cookie (named after login.cookie_name) for the callback at callbackURL.
func hasFlowCookie(t *testing.T, b *plugintest.Browser, loginCookieName, callbackURL string) bool {
	t.Helper()
	u, err := url.Parse(callbackURL)
	if err != nil {
		t.Fatal(err)
	}
	return cookieNamed(b, u, loginCookieName+"_upstream") != nil
}

// otpBeforeLink GETs the link route linkPath (with its query) at base in a
// browser whose login has passed the password but not the second factor:
// the route must send it (303) to the OTP page otpPath, returning to the
// link route, and start no upstream flow (no flow cookie of
// loginCookieName for callbackURL). It returns the OTP page.
func otpBeforeLink(t *testing.T, b *plugintest.Browser, base, otpPath, linkPath, loginCookieName, callbackURL string) *plugintest.Page {
	t.Helper()
	redirect := b.Follow(base+linkPath, base+otpPath)
	if redirect.Status != http.StatusSeeOther || redirect.URL.Path != otpPath || redirect.URL.Query().Get("return_to") != linkPath {
		t.Fatalf("a login without the second factor was not sent to %s returning to %s: %s (steps %v)", otpPath, linkPath, redirect, b.Steps)
	}
	if hasFlowCookie(t, b, loginCookieName, callbackURL) {
		t.Fatal("a login without the second factor started an upstream flow")
	}
	page := b.Follow(redirect.URL.String(), "")
	if page.Status != http.StatusOK || page.URL.Path != otpPath || page.HiddenField("return_to") != linkPath || !strings.Contains(page.Body, `name="otp"`) {
		t.Fatalf("no OTP page returning to %s: %s", linkPath, page)
	}
	return page
}

// backAtLink types code on the OTP page otpPage (posting to otpPath) and
// checks that the browser comes back to the link confirmation page of
// provider.
func backAtLink(t *testing.T, b *plugintest.Browser, otpPage *plugintest.Page, otpPath, code, provider string) *plugintest.Page {
	t.Helper()
	back := b.Submit(otpPage, otpPath, url.Values{"otp": {code}, "return_to": {otpPage.HiddenField("return_to")}}, "")
	if back.Status != http.StatusOK || !strings.HasSuffix(back.URL.Path, "/federated-identities/"+provider+"/link") ||
		!strings.Contains(back.Body, "Link your "+provider+" account?") {
		t.Fatalf("after the code, not back at the confirmation page: %s (steps %v)", back, b.Steps)
	}
	return back
}

// smtpMail points a configuration's mail at a real SMTP peer.
func smtpMail(smtpSrv *mailtest.Server) func(*plugin.Config) {
	return func(c *plugin.Config) {
		c.Mail.Driver = "smtp"
		c.Mail.SMTPURL = smtpSrv.URL()
		c.Mail.TLS = "none"
		c.Mail.From = "otpstep <otp@example.com>"
	}
}

// The browser links through a real upstream: GET shows a confirmation page
// and starts nothing (a link or <img> on another site cannot start a link);
// its Link button (a POST with the page's CSRF token; without it 403) goes
// to the upstream with state, nonce and PKCE; the callback links and
// answers a page; the same callback replayed (even with the flow cookie)
// fails, and an old login must sign in again first, on GET and POST alike
// (and pass the second factor again). TestBrowser_LinkNeedsTheSecondFactor
// has the login that passed the password only.
func TestBrowser_LinkThroughTheUpstream(t *testing.T) {
	smtpSrv := mailtest.StartServer(t)
	f := plugintest.StartFederation(t, "sqlite", "partner", false, smtpMail(smtpSrv))
	client := f.Down.NewClient(t, false)
	alice := f.Down.NewUser(t)
	upAlice := f.Up.NewUser(t)
	b := f.Down.LoginWithPassword(t, client, alice).Browser
	linkURL := f.Down.URL + "/federated-identities/partner/link"
	cookieName := f.Down.Plugin.Provider.Config().Login.CookieName
	otpPage := otpBeforeLink(t, b, f.Down.URL, "/login/otp", "/federated-identities/partner/link", cookieName, f.Callback())
	backAtLink(t, b, otpPage, "/login/otp", codeFrom(t, smtpSrv, 1, alice.Email), "partner")

	confirm, action := linkConfirmation(t, b, linkURL, "partner")
	if action != "/federated-identities/partner/link" {
		t.Fatalf("the Link button posts to %q", action)
	}
	if hasFlowCookie(t, b, cookieName, f.Callback()) {
		t.Fatal("GET started an upstream flow")
	}
	// A form on another site has no CSRF token of this one.
	for _, form := range []url.Values{{}, {"csrf_token": {"forged-token"}}} {
		resp, err := b.Client.PostForm(linkURL, form)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Location") != "" || !strings.Contains(string(body), "The form expired") {
			t.Fatalf("POST with csrf_token %q: %d %q %s", form.Get("csrf_token"), resp.StatusCode, resp.Header.Get("Location"), body)
		}
	}
	if hasFlowCookie(t, b, cookieName, f.Callback()) {
		t.Fatal("a POST without the CSRF token started an upstream flow")
	}

	page := b.Submit(confirm, action, url.Values{"return_to": {confirm.HiddenField("return_to")}}, f.Callback())
	if page.Status != 200 || !strings.HasPrefix(page.URL.String(), f.Up.URL+"/login") {
		t.Fatalf("the Link button did not reach the upstream's login: %s (steps %v)", page, b.Steps)
	}
	var authorize *url.URL
	for _, step := range b.Steps {
		if u, _ := url.Parse(strings.TrimPrefix(step, "GET ")); u != nil && strings.HasPrefix(u.String(), f.Up.URL+"/oauth2/auth") {
			authorize = u
			break
		}
	}
	if authorize == nil {
		t.Fatalf("no authorize request at the upstream: %v", b.Steps)
	}
	q := authorize.Query()
	if q.Get("code_challenge_method") != "S256" || len(q.Get("code_challenge")) != 43 || len(q.Get("state")) < 32 ||
		len(q.Get("nonce")) < 32 || q.Get("redirect_uri") != f.Callback() || q.Get("client_id") != f.UpClient.ID {
		t.Fatalf("authorize request %s", authorize)
	}
	back := b.Submit(page, "/login", url.Values{"email": {upAlice.Email}, "password": {upAlice.Password}, "return_to": {page.HiddenField("return_to")}}, f.Callback())
	if back.URL.Query().Get("code") == "" || back.URL.Query().Get("state") != q.Get("state") {
		t.Fatalf("upstream did not come back with code and state: %s", back)
	}
	flowCookie := cookieNamed(b, back.URL, cookieName+"_upstream")
	if flowCookie == nil {
		t.Fatal("no flow cookie on the way back")
	}

	done := b.Follow(back.URL.String(), "")
	if done.Status != 200 || !strings.Contains(done.Body, "Your partner account is now linked") {
		t.Fatalf("callback: %s", done)
	}
	li, err := f.Down.Store.GetLinkedIdentityBySubject(context.Background(), "partner", upAlice.ID)
	if err != nil || li.UserID != alice.ID {
		t.Fatalf("link %+v %v", li, err)
	}

	// Replayed: the browser sends the old flow cookie and the same code and state.
	b.Client.Jar.SetCookies(back.URL, []*http.Cookie{{Name: flowCookie.Name, Value: flowCookie.Value, Path: "/federated-identities/partner/"}})
	replay := b.Follow(back.URL.String(), "")
	if replay.Status != 400 || !strings.Contains(replay.Body, "expired or was already used") {
		t.Fatalf("replayed callback: %s", replay)
	}
	// Without the cookie at all.
	if again := b.Follow(back.URL.String(), ""); again.Status != 400 {
		t.Fatalf("callback without the flow cookie: %s", again)
	}

	// A state that does not match the flow cookie (the upstream, signed in
	// already, comes straight back).
	confirm, action = linkConfirmation(t, b, linkURL, "partner")
	tampered := b.Submit(confirm, action, url.Values{"return_to": {""}}, f.Callback())
	tq := tampered.URL.Query()
	if tq.Get("code") == "" || !hasFlowCookie(t, b, cookieName, f.Callback()) {
		t.Fatalf("second flow: %s", tampered)
	}
	tq.Set("state", "x"+tq.Get("state"))
	tampered.URL.RawQuery = tq.Encode()
	if got := b.Follow(tampered.URL.String(), ""); got.Status != 400 || !strings.Contains(got.Body, "expired or was already used") {
		t.Fatalf("tampered state: %s", got)
	}

	// An old login goes back to /login first, from the confirmation page and
	// from its Link button alike, and comes back to the confirmation page
	// through the OTP page (the new login has passed the password only).
	confirm, action = linkConfirmation(t, b, linkURL+"?return_to=/login/otp", "partner")
	if confirm.HiddenField("return_to") != "/login/otp" {
		t.Fatalf("return_to not carried: %s", confirm)
	}
	f.Down.Clock.Advance(f.Down.Plugin.Provider.Config().LinkedIdentity.ReauthMaxAge + time.Second)
	stale := b.Follow(linkURL+"?return_to=/login/otp", f.Down.URL+"/login")
	if stale.Status != http.StatusSeeOther || stale.URL.Path != "/login" ||
		stale.URL.Query().Get("return_to") != "/federated-identities/partner/link?return_to=%2Flogin%2Fotp" {
		t.Fatalf("old login: %s", stale)
	}
	stalePost := b.Submit(confirm, action, url.Values{"return_to": {"/login/otp"}}, f.Down.URL+"/login")
	if stalePost.Status != http.StatusSeeOther || stalePost.URL.Path != "/login" ||
		stalePost.URL.Query().Get("return_to") != "/federated-identities/partner/link?return_to=%2Flogin%2Fotp" {
		t.Fatalf("old login, Link button: %s", stalePost)
	}
	if hasFlowCookie(t, b, cookieName, f.Callback()) {
		t.Fatal("an old login started an upstream flow")
	}
	loginPage := b.Follow(stalePost.URL.String(), "")
	otpAgain := b.Submit(loginPage, "/login", url.Values{"email": {alice.Email}, "password": {alice.Password}, "return_to": {loginPage.HiddenField("return_to")}}, f.Callback())
	if otpAgain.Status != 200 || otpAgain.URL.Path != "/login/otp" || otpAgain.HiddenField("return_to") != "/federated-identities/partner/link?return_to=%2Flogin%2Fotp" {
		t.Fatalf("after signing in again, not at the OTP page: %s", otpAgain)
	}
	again := backAtLink(t, b, otpAgain, "/login/otp", codeFrom(t, smtpSrv, 2, alice.Email), "partner")
	if again.HiddenField("return_to") != "/login/otp" {
		t.Fatalf("after signing in again, return_to lost: %s", again)
	}
}

// A login that has passed the password but not the emailed code cannot link
// an upstream account (a partner trusting the link would trust what only
// the password guarded): the confirmation page and its Link button alike
// send the browser to the OTP page and start nothing; once the code is
// right it comes back to the confirmation page and the link completes. A
// session sent back to the password while the browser is at the upstream (a
// login UI re-challenged it) links nothing at the callback.
func TestBrowser_LinkNeedsTheSecondFactor(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		smtpSrv := mailtest.StartServer(t)
		f := plugintest.StartFederation(t, dialect, "partner", false, smtpMail(smtpSrv))
		ctx := context.Background()
		api := newAPIClient(t, f.Down)
		client := f.Down.NewClient(t, false, "user:sessions:update")
		alice, upAlice := f.Down.NewUser(t), f.Up.NewUser(t)
		login := f.Down.LoginWithPassword(t, client, alice) // acr aal1: the password only
		b := login.Browser
		linkPath := "/federated-identities/partner/link"
		linkURL := f.Down.URL + linkPath
		cookieName := f.Down.Plugin.Provider.Config().Login.CookieName
		noLink := func(when string) {
			t.Helper()
			if lis, err := f.Down.Store.ListLinkedIdentities(ctx, alice.ID); err != nil || len(lis) != 0 {
				t.Fatalf("%s: alice's links %+v %v", when, lis, err)
			}
		}

		// The confirmation page: to the OTP page, a code on its way.
		otpPage := otpBeforeLink(t, b, f.Down.URL, "/login/otp", linkPath, cookieName, f.Callback())
		// The Link button (with a good CSRF token) all the same.
		post := b.Submit(otpPage, linkPath, url.Values{"return_to": {""}}, f.Down.URL+"/login/otp")
		if post.Status != http.StatusSeeOther || post.URL.Path != "/login/otp" || post.URL.Query().Get("return_to") != linkPath {
			t.Fatalf("Link button without the second factor: %s", post)
		}
		if hasFlowCookie(t, b, cookieName, f.Callback()) {
			t.Fatal("the Link button started an upstream flow without the second factor")
		}
		noLink("before the code")
		code := codeFrom(t, smtpSrv, 1, alice.Email)
		if n := len(smtpSrv.Messages()); n != 1 {
			t.Fatalf("%d mails, want 1 (the live code is not sent again)", n)
		}

		// The code typed, back at the confirmation page; the Link button
		// goes to the upstream.
		backAtLink(t, b, otpPage, "/login/otp", code, "partner")
		confirm, action := linkConfirmation(t, b, linkURL, "partner")
		page := b.Submit(confirm, action, url.Values{"return_to": {""}}, f.Callback())
		if page.Status != http.StatusOK || !strings.HasPrefix(page.URL.String(), f.Up.URL+"/login") {
			t.Fatalf("the Link button did not reach the upstream's login: %s (steps %v)", page, b.Steps)
		}
		// Meanwhile a login UI sends the session back to the password (a
		// new code, past the resend interval).
		f.Down.Clock.Advance(f.Down.Plugin.Provider.Config().OTP.ResendInterval + time.Second)
		if resp := api.putSession(login.Token.AccessToken, login.SID, alice.ID, false); resp.Status != http.StatusOK {
			t.Fatalf("re-challenge: %d %s", resp.Status, resp.Body)
		}
		back := b.Submit(page, "/login", url.Values{"email": {upAlice.Email}, "password": {upAlice.Password}, "return_to": {page.HiddenField("return_to")}}, f.Callback())
		if back.URL.Query().Get("code") == "" {
			t.Fatalf("the upstream did not come back: %s", back)
		}
		refused := b.Follow(back.URL.String(), "")
		if refused.Status != http.StatusUnauthorized || !strings.Contains(refused.Body, "start linking again") {
			t.Fatalf("callback for a session without the second factor: %s", refused)
		}
		noLink("after the callback of a re-challenged session")

		// The new code typed, linking completes (the upstream, signed in
		// already, comes straight back).
		otpPage = otpBeforeLink(t, b, f.Down.URL, "/login/otp", linkPath, cookieName, f.Callback())
		backAtLink(t, b, otpPage, "/login/otp", codeFrom(t, smtpSrv, 2, alice.Email), "partner")
		confirm, action = linkConfirmation(t, b, linkURL, "partner")
		back = b.Submit(confirm, action, url.Values{"return_to": {""}}, f.Callback())
		done := b.Follow(back.URL.String(), "")
		if done.Status != http.StatusOK || !strings.Contains(done.Body, "Your partner account is now linked") {
			t.Fatalf("callback after the code: %s", done)
		}
		li, err := f.Down.Store.GetLinkedIdentityBySubject(ctx, "partner", upAlice.ID)
		if err != nil || li.UserID != alice.ID {
			t.Fatalf("link %+v %v", li, err)
		}
	})
}

var partnerButton = regexp.MustCompile(`href="(/federated-identities/partner/login[^"]*)"`)

// Sign-in with a partner: a linked upstream subject is the first factor
// (amr fed), the second factor still applies; an unlinked subject gets a
// page, even when its email is a local user's.
func TestBrowser_SignInWithPartner(t *testing.T) {
	smtpSrv := mailtest.StartServer(t)
	f := plugintest.StartFederation(t, "sqlite", "partner", true, func(c *plugin.Config) {
		c.Mail.Driver = "smtp"
		c.Mail.SMTPURL = smtpSrv.URL()
		c.Mail.TLS = "none"
		c.Mail.From = "otpstep <otp@example.com>"
	})
	ctx := context.Background()
	rp := f.Down.NewClient(t, true) // requires the second factor
	alice := f.Down.NewUser(t)
	upAlice := f.Up.NewUser(t)
	if err := f.Down.Store.CreateLinkedIdentity(ctx, &storage.LinkedIdentity{UserID: alice.ID, Provider: "partner", Subject: upAlice.ID}); err != nil {
		t.Fatal(err)
	}

	signIn := func(b *plugintest.Browser, up *plugintest.User, authURL string) *plugintest.Page {
		t.Helper()
		page := b.Follow(authURL, plugintest.RedirectURI)
		m := partnerButton.FindStringSubmatch(page.Body)
		if page.URL.Path != "/login" || m == nil {
			t.Fatalf("no partner button on the login page: %s", page)
		}
		page = b.Follow(f.Down.URL+strings.ReplaceAll(m[1], "&amp;", "&"), plugintest.RedirectURI)
		if !strings.HasPrefix(page.URL.String(), f.Up.URL+"/login") {
			t.Fatalf("partner button did not reach the upstream: %s", page)
		}
		return b.Submit(page, "/login", url.Values{"email": {up.Email}, "password": {up.Password}, "return_to": {page.HiddenField("return_to")}}, plugintest.RedirectURI)
	}

	b := plugintest.NewBrowser(t)
	verifier, nonce := oauth2.GenerateVerifier(), plugintest.RandomString(12)
	page := signIn(b, upAlice, rp.Conf.AuthCodeURL("state-123456789", oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce)))
	if page.Status != 200 || !strings.HasPrefix(page.URL.String(), f.Down.URL+"/login/otp") {
		t.Fatalf("after the partner, the second factor: %s (steps %v)", page, b.Steps)
	}
	code := codeFrom(t, smtpSrv, 1, alice.Email)
	back := b.Submit(page, "/login/otp", url.Values{"otp": {code}, "return_to": {page.HiddenField("return_to")}}, plugintest.RedirectURI)
	if back.URL.Query().Get("code") == "" {
		t.Fatalf("after the code: %s", back)
	}
	op, err := oidc.NewProvider(ctx, f.Down.URL)
	if err != nil {
		t.Fatal(err)
	}
	conf := rp.Conf
	conf.Endpoint = op.Endpoint()
	conf.Endpoint.AuthStyle = oauth2.AuthStyleInHeader
	tok, err := conf.Exchange(ctx, back.URL.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	idt, err := op.Verifier(&oidc.Config{ClientID: rp.ID}).Verify(ctx, tok.Extra("id_token").(string))
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		Acr string   `json:"acr"`
		Amr []string `json:"amr"`
	}
	_ = idt.Claims(&claims)
	if idt.Subject != alice.ID || claims.Acr != "aal2" || strings.Join(claims.Amr, ",") != provider.AMRFederated+",otp" || idt.Nonce != nonce {
		t.Fatalf("sub %s claims %+v nonce %q", idt.Subject, claims, idt.Nonce)
	}

	// An unlinked upstream account whose email is a local user's.
	carol, err := f.Down.Plugin.Provider.CreateUser(ctx, "carol-"+plugintest.RandomString(6)+"@example.com", "correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	upCarol, err := f.Up.Plugin.Provider.CreateUser(ctx, carol.Email, "another horse battery")
	if err != nil {
		t.Fatal(err)
	}
	b2 := plugintest.NewBrowser(t)
	refused := signIn(b2, &plugintest.User{User: upCarol, Password: "another horse battery"},
		rp.Conf.AuthCodeURL("state-223456789", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	if refused.Status != 403 || !strings.Contains(refused.Body, "is not linked to an account here") {
		t.Fatalf("unlinked subject: %s", refused)
	}
	for _, c := range b2.Client.Jar.Cookies(&url.URL{Scheme: "http", Host: strings.TrimPrefix(f.Down.URL, "http://"), Path: "/"}) {
		if c.Name == f.Down.Plugin.Provider.Config().Login.CookieName {
			t.Fatal("an unlinked subject got a login session")
		}
	}
	events, _ := f.Down.Store.ListAuditEvents(ctx, "", 0)
	found := false
	for _, e := range events {
		if e.Type == provider.AuditFederatedLoginRefused && e.Detail["subject"] == upCarol.ID && e.Detail["reason"] == "not-linked" {
			found = true
		}
	}
	if !found {
		t.Fatal("no audit event for the refused sign-in")
	}
}

func TestAdminAPI_PartnerProvisioning(t *testing.T) {
	f := plugintest.StartFederation(t, "sqlite", "partner", false, nil)
	srv := f.Down
	api := newAPIClient(t, srv)
	partner := srv.NewClient(t, false, "admin:federated-identity:write")
	ccToken := func(scopes ...string) string {
		t.Helper()
		cc := clientcredentials.Config{ClientID: partner.ID, ClientSecret: partner.Secret, TokenURL: srv.URL + "/oauth2/token", Scopes: scopes}
		tok, err := cc.Token(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return tok.AccessToken
	}
	admin, noScope := ccToken("admin:federated-identity:write"), ccToken("email")
	alice, bob := srv.NewUser(t), srv.NewUser(t)
	// A user's token, even with the scope, is not a partner's.
	userTok := srv.LoginWithPassword(t, partner, alice).Token.AccessToken
	path := func(userID, provider string) string {
		return "/admin/users/" + userID + "/federated-identities/" + provider
	}
	body := `{"subject":"partner-sub-1","email":"alice@partner.example"}`

	resp := api.doAbs(http.MethodPut, path(alice.ID, "partner"), admin, body)
	if resp.Status != 200 {
		t.Fatalf("provision: %d %s", resp.Status, resp.Body)
	}
	if got := resp.json(t); got["subject"] != "partner-sub-1" || got["email"] != "alice@partner.example" || got["provider"] != "partner" {
		t.Fatalf("body %s", resp.Body)
	}
	cases := []struct {
		name, method, path, token, body string
		status                          int
		code, source                    string
	}{
		{"no token", http.MethodPut, path(alice.ID, "partner"), "", body, 401, "unauthorized", ""},
		{"user token with the scope", http.MethodPut, path(alice.ID, "partner"), userTok, body, 403, "insufficient-scope", ""},
		{"user token deleting", http.MethodDelete, path(alice.ID, "partner"), userTok, "", 403, "insufficient-scope", ""},
		{"client token without the scope", http.MethodPut, path(alice.ID, "partner"), noScope, body, 403, "insufficient-scope", ""},
		{"malformed userId", http.MethodPut, path("nope", "partner"), admin, body, 422, "validation-failed", "userId"},
		{"unknown user", http.MethodPut, path(uuid.NewString(), "partner"), admin, body, 404, "not-found", ""},
		{"unknown provider", http.MethodPut, path(alice.ID, "nobody"), admin, body, 404, "not-found", ""},
		{"subject missing", http.MethodPut, path(alice.ID, "partner"), admin, `{"email":"a@b.example"}`, 422, "validation-failed", "/subject"},
		{"email malformed", http.MethodPut, path(alice.ID, "partner"), admin, `{"subject":"s","email":"nope"}`, 422, "validation-failed", "/email"},
		{"subject of another user", http.MethodPut, path(bob.ID, "partner"), admin, body, 409, "identity-already-linked", ""},
		{"delete malformed userId", http.MethodDelete, path("nope", "partner"), admin, "", 422, "validation-failed", "userId"},
		{"delete without a link", http.MethodDelete, path(bob.ID, "partner"), admin, "", 404, "not-found", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			api.t = t
			wantError(t, api.doAbs(tc.method, tc.path, tc.token, tc.body), tc.status, tc.code, tc.source)
		})
	}
	api.t = t
	if del := api.doAbs(http.MethodDelete, path(alice.ID, "partner"), admin, ""); del.Status != 204 {
		t.Fatalf("delete: %d %s", del.Status, del.Body)
	}
	if _, err := srv.Store.GetLinkedIdentityBySubject(context.Background(), "partner", "partner-sub-1"); err == nil {
		t.Fatal("the link survived the delete")
	}
	events, _ := srv.Store.ListAuditEvents(context.Background(), alice.ID, 0)
	var byPartner int
	for _, e := range events {
		if (e.Type == provider.AuditIdentityLinked || e.Type == provider.AuditIdentityUnlinked) && e.ClientID == partner.ID && e.Detail["by"] == provider.LinkByPartner {
			byPartner++
		}
	}
	if byPartner != 2 {
		t.Fatalf("%d partner audit events, want link and unlink: %+v", byPartner, events)
	}
}

// Linking through the API needs what the browser's link page needs: a login
// that passed the second factor (aal2) no older than
// linked_identity.reauth_max_age; otherwise 401 with an RFC 9470 step-up
// challenge, and the ID token is not spent. Each upstream ID token links
// once: presented again, by anyone, it is refused like any failed check.
func TestFederatedIdentities_PutNeedsARecentSecondFactorAndEachIDTokenOnce(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		f := plugintest.StartFederation(t, dialect, "partner", false, nil)
		api := newAPIClient(t, f.Down)
		client := f.Down.NewClient(t, false, federatedScopes...)
		alice, bob, upAlice := f.Down.NewUser(t), f.Down.NewUser(t), f.Up.NewUser(t)
		ctx := context.Background()
		noLink := func(when string) {
			t.Helper()
			if lis, err := f.Down.Store.ListLinkedIdentities(ctx, alice.ID); err != nil || len(lis) != 0 {
				t.Fatalf("%s: alice's links %+v %v", when, lis, err)
			}
		}
		wantStepUp := func(when string, resp apiResponse) {
			t.Helper()
			wantError(t, resp, 401, "unauthorized", "")
			if ch := resp.Header.Get("WWW-Authenticate"); !strings.Contains(ch, `error="insufficient_user_authentication"`) ||
				!strings.Contains(ch, `acr_values="aal2"`) || !strings.Contains(ch, "max_age=300") {
				t.Fatalf("%s: WWW-Authenticate %q", when, ch)
			}
			noLink(when)
		}
		idToken := upstreamIDToken(t, f, upAlice)

		// The password alone (aal1).
		wantStepUp("aal1", api.putLink(f.Down.LoginWithPassword(t, client, alice).Token.AccessToken, "partner", idToken))
		// Past the second factor, but longer ago than reauth_max_age (5m).
		// (The login is moved back, not the clock: fosite's authorize checks
		// auth_time against the real time.)
		stale := f.Down.LoginPastSecondFactor(t, client, alice)
		ls, err := f.Down.Store.GetLoginSession(ctx, stale.SID)
		if err != nil {
			t.Fatal(err)
		}
		ls.AuthTime = ls.AuthTime.Add(-f.Down.Plugin.Provider.Config().LinkedIdentity.ReauthMaxAge - time.Second)
		if err := f.Down.Store.UpdateLoginSession(ctx, ls); err != nil {
			t.Fatal(err)
		}
		wantStepUp("aal2 too long ago", api.putLink(stale.Token.AccessToken, "partner", idToken))

		// A recent aal2 login links, with the token the refusals left unspent.
		aliceTok := f.Down.LoginPastSecondFactor(t, client, alice).Token.AccessToken
		if resp := api.putLink(aliceTok, "partner", idToken); resp.Status != 204 {
			t.Fatalf("recent aal2 login: %d %s", resp.Status, resp.Body)
		}
		// The same token again: refused for alice, and for bob once she unlinked.
		wantError(t, api.putLink(aliceTok, "partner", idToken), 422, "validation-failed", "/idToken")
		if del := api.do(http.MethodDelete, "/federated-identities/partner", aliceTok, "", ""); del.Status != 204 {
			t.Fatalf("unlink: %d %s", del.Status, del.Body)
		}
		bobTok := f.Down.LoginPastSecondFactor(t, client, bob).Token.AccessToken
		wantError(t, api.putLink(bobTok, "partner", idToken), 422, "validation-failed", "/idToken")
		if lis, err := f.Down.Store.ListLinkedIdentities(ctx, bob.ID); err != nil || len(lis) != 0 {
			t.Fatalf("bob linked a replayed token: %+v %v", lis, err)
		}
		replayed := "identity.link_refused:" + string(upstream.ReasonReplayed)
		if got := auditTypes(t, f.Down.Store, bob.ID); !slices.Contains(got, replayed) {
			t.Errorf("bob's audit trail %v lacks %s", got, replayed)
		}
		// A new token of the same upstream account links for bob.
		if resp := api.putLink(bobTok, "partner", upstreamIDToken(t, f, upAlice)); resp.Status != 204 {
			t.Fatalf("a fresh ID token: %d %s", resp.Status, resp.Body)
		}
	})
}

// signInWithPartner signs upUser in at Down through the login page's
// "Sign in with partner" button and the upstream's login form, for a client
// that does not require the second factor, and returns the tokens (aal1,
// amr fed) with the login session's sid.
func signInWithPartner(t *testing.T, f *plugintest.Federation, client *plugintest.Client, upUser *plugintest.User) *plugintest.Login {
	t.Helper()
	b := plugintest.NewBrowser(t)
	verifier := oauth2.GenerateVerifier()
	page := b.Follow(client.Conf.AuthCodeURL(plugintest.RandomString(12), oauth2.S256ChallengeOption(verifier),
		oauth2.SetAuthURLParam("nonce", plugintest.RandomString(12))), plugintest.RedirectURI)
	m := partnerButton.FindStringSubmatch(page.Body)
	if page.URL.Path != "/login" || m == nil {
		t.Fatalf("no partner button on the login page: %s", page)
	}
	page = b.Follow(f.Down.URL+strings.ReplaceAll(m[1], "&amp;", "&"), plugintest.RedirectURI)
	page = b.Submit(page, "/login", url.Values{"email": {upUser.Email}, "password": {upUser.Password}, "return_to": {page.HiddenField("return_to")}}, plugintest.RedirectURI)
	code := page.URL.Query().Get("code")
	if code == "" {
		t.Fatalf("sign-in with the partner: %s (steps %v)", page, b.Steps)
	}
	tok, err := client.Conf.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	return &plugintest.Login{Browser: b, Token: tok, SID: plugintest.IDTokenClaim(t, tok, "sid")}
}

// PACE's SetFederatedIdentity sends no body: the upstream identity the
// token's login session signed in with is linked (204), as each SDK sends
// it (Android: Content-Type application/json on the empty body; iOS: Accept
// only). The rules of the body's form apply: a login past the second factor
// (401 step-up before), the subject another user's → 409. A session that
// signed in with a password, or with another upstream → 404.
func TestFederatedIdentities_PutWithoutABodyLinksThePartnerSignedInWith(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		f := plugintest.StartFederation(t, dialect, "partner", true, func(c *plugin.Config) {
			// A second upstream the sessions below did not sign in with.
			other := c.Upstreams[len(c.Upstreams)-1]
			other.Name, other.AllowLogin = "other", false
			c.Upstreams = append(c.Upstreams, other)
		})
		ctx := context.Background()
		api := newAPIClient(t, f.Down)
		client := f.Down.NewClient(t, false, federatedScopes...)
		alice, bob, upAlice := f.Down.NewUser(t), f.Down.NewUser(t), f.Up.NewUser(t)
		if err := f.Down.Store.CreateLinkedIdentity(ctx, &storage.LinkedIdentity{UserID: alice.ID, Provider: "partner", Subject: upAlice.ID}); err != nil {
			t.Fatal(err)
		}
		android := func(tok, idp string) apiResponse {
			t.Helper()
			return api.do(http.MethodPut, "/federated-identities/"+idp, tok, "application/json", "", "Accept", "application/json")
		}
		ios := func(tok, idp string) apiResponse {
			t.Helper()
			return api.do(http.MethodPut, "/federated-identities/"+idp, tok, "", "", "Accept", "application/json")
		}
		linkOf := func(userID string) *storage.LinkedIdentity {
			t.Helper()
			lis, err := f.Down.Store.ListLinkedIdentities(ctx, userID)
			if err != nil || len(lis) > 1 {
				t.Fatalf("links of %s: %+v %v", userID, lis, err)
			}
			if len(lis) == 0 {
				return nil
			}
			return &lis[0]
		}

		signedIn := signInWithPartner(t, f, client, upAlice)
		tok := signedIn.Token.AccessToken
		su, err := f.Down.Store.GetSessionUpstream(ctx, signedIn.SID)
		if err != nil || su.Provider != "partner" || su.Subject != upAlice.ID || su.Email != upAlice.Email {
			t.Fatalf("the session's upstream %+v %v", su, err)
		}
		// Signed in with the partner alone (aal1): a step-up first.
		wantError(t, android(tok, "partner"), 401, "unauthorized", "")
		if err := f.Down.Store.PassLoginSession(ctx, signedIn.SID, alice.ID, provider.AMROTP); err != nil {
			t.Fatal(err)
		}

		if del := api.do(http.MethodDelete, "/federated-identities/partner", tok, "", ""); del.Status != 204 {
			t.Fatalf("unlink: %d %s", del.Status, del.Body)
		}
		if resp := android(tok, "partner"); resp.Status != 204 || len(resp.Body) != 0 {
			t.Fatalf("Android's body-less link: %d %s", resp.Status, resp.Body)
		}
		li := linkOf(alice.ID)
		if li == nil || li.Provider != "partner" || li.Subject != upAlice.ID || li.Email != upAlice.Email {
			t.Fatalf("alice's link %+v", li)
		}
		// Again, as iOS sends it: the same link.
		if resp := ios(tok, "partner"); resp.Status != 204 || len(resp.Body) != 0 {
			t.Fatalf("iOS's body-less link: %d %s", resp.Status, resp.Body)
		}
		if again := linkOf(alice.ID); again == nil || again.ID != li.ID {
			t.Fatalf("linking again: %+v, was %+v", again, li)
		}
		if n := countAudit(t, f.Down.Store, alice.ID, provider.AuditIdentityLinked, "by", provider.LinkByAPI); n != 2 {
			t.Fatalf("%d API links audited, want 2", n)
		}

		// Not the upstream the session signed in with; not configured.
		wantError(t, android(tok, "other"), 404, "not-found", "")
		wantError(t, ios(tok, "nobody"), 404, "not-found", "")
		// A session that signed in with the password has nothing to link.
		pwd := f.Down.LoginPastSecondFactor(t, client, alice).Token.AccessToken
		wantError(t, ios(pwd, "partner"), 404, "not-found", "")
		wantError(t, android(pwd, "partner"), 404, "not-found", "")
		// The body's form still works beside it, and answers 204 too.
		if resp := api.putLink(pwd, "partner", upstreamIDToken(t, f, upAlice)); resp.Status != 204 || len(resp.Body) != 0 {
			t.Fatalf("link with an ID token: %d %s", resp.Status, resp.Body)
		}

		// The subject is bob's now: alice's session cannot take it back.
		if err := f.Down.Store.DeleteLinkedIdentity(ctx, alice.ID, "partner"); err != nil {
			t.Fatal(err)
		}
		if err := f.Down.Store.CreateLinkedIdentity(ctx, &storage.LinkedIdentity{UserID: bob.ID, Provider: "partner", Subject: upAlice.ID}); err != nil {
			t.Fatal(err)
		}
		wantError(t, android(tok, "partner"), 409, "identity-already-linked", "")
		if li := linkOf(alice.ID); li != nil {
			t.Fatalf("alice took bob's subject: %+v", li)
		}
	})
}
