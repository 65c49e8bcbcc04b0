package plugin_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"

	"github.com/otpstep/otpstep/plugin/plugintest"
	"github.com/otpstep/otpstep/provider"
	"github.com/otpstep/otpstep/storage"
	"github.com/otpstep/otpstep/web/openapitest"
)

// discoveryWalk is one user signed in once in one browser, and the
// provider's metadata, for TestDiscovery_EveryCapabilityIsUsed.
type discoveryWalk struct {
	*reauthFlow
	meta map[string]any
}

// client registers a confidential client for the code flow (no second
// factor, no consent) with nc's other fields.
func (w *discoveryWalk) client(nc provider.NewClient) (*storage.Client, string) {
	w.t.Helper()
	if nc.RedirectURIs == nil {
		nc.RedirectURIs = []string{rpRedirect}
	}
	if nc.GrantTypes == nil {
		nc.GrantTypes = []string{"authorization_code", "refresh_token", "client_credentials"}
		if nc.Public || nc.TokenEndpointAuthMethod == provider.AuthNone {
			nc.GrantTypes = nc.GrantTypes[:2]
		}
	}
	if nc.Scopes == nil {
		nc.Scopes = []string{"openid", "offline_access", "email"}
	}
	nc.SkipConsent = true
	if nc.RequireSecondFactor == nil {
		off := false
		nc.RequireSecondFactor = &off
	}
	c, secret, err := w.srv.Plugin.Provider.CreateClient(context.Background(), nc)
	if err != nil {
		w.t.Fatalf("client %+v: %v", nc, err)
	}
	return c, secret
}

// authorizeURL is an authorize request of client c with PKCE S256 and the
// given parameters (over the defaults).
func (w *discoveryWalk) authorizeURL(c *storage.Client, verifier string, params ...string) string {
	q := url.Values{
		"response_type": {"code"}, "client_id": {c.ID}, "redirect_uri": {rpRedirect}, "scope": {"openid offline_access email"},
		"state": {randomString(12)}, "nonce": {randomString(12)},
		"code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"},
	}
	for i := 0; i+1 < len(params); i += 2 {
		if params[i+1] == "" {
			q.Del(params[i])
		} else {
			q.Set(params[i], params[i+1])
		}
	}
	return w.str("authorization_endpoint") + "?" + q.Encode()
}

// code runs an authorize request of c in the signed-in browser and returns
// the code (failing on anything else).
func (w *discoveryWalk) code(c *storage.Client, verifier string, params ...string) string {
	w.t.Helper()
	page := w.b.Follow(w.authorizeURL(c, verifier, params...), rpRedirect)
	code := page.URL.Query().Get("code")
	if code == "" {
		w.t.Fatalf("no code for %v: %s", params, page)
	}
	return code
}

// authorizeError runs an authorize request and returns the OAuth error it
// ends with: at the redirect URI, or the page's status when it cannot go
// back.
func (w *discoveryWalk) authorizeError(c *storage.Client, params ...string) string {
	w.t.Helper()
	page := w.b.Follow(w.authorizeURL(c, oauth2.GenerateVerifier(), params...), rpRedirect)
	if e := page.URL.Query().Get("error"); e != "" && strings.HasPrefix(page.URL.String(), rpRedirect) {
		return e
	}
	if page.URL.Query().Get("code") != "" {
		return ""
	}
	return fmt.Sprintf("page %d", page.Status)
}

// post sends form to a discovered endpoint, authenticating with HTTP Basic
// when user is set, and returns the status and the JSON body.
func (w *discoveryWalk) post(endpoint string, form url.Values, user, pass string) (int, map[string]any) {
	w.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, w.str(endpoint), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	body := map[string]any{}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

func (w *discoveryWalk) str(key string) string {
	s, _ := w.meta[key].(string)
	if s == "" {
		w.t.Fatalf("discovery has no %s", key)
	}
	return s
}

func (w *discoveryWalk) list(key string) []string {
	var out []string
	raw, _ := w.meta[key].([]any)
	for _, v := range raw {
		s, _ := v.(string)
		out = append(out, s)
	}
	return out
}

// each runs check for every advertised value of key; a value check does
// not know fails (advertised, not usable), and so does any of unlisted
// that is advertised (listed as refused below, yet advertised).
func (w *discoveryWalk) each(key string, checks map[string]func(t *testing.T), refused ...string) {
	w.t.Helper()
	values := w.list(key)
	if len(values) == 0 {
		w.t.Errorf("%s is empty", key)
	}
	for _, v := range values {
		check, ok := checks[v]
		if !ok {
			w.t.Errorf("%s advertises %q, which this test cannot use", key, v)
			continue
		}
		w.t.Run(key+"="+v, check)
	}
	for v := range checks {
		if !slices.Contains(values, v) {
			w.t.Errorf("%s does not advertise %q, which works", key, v)
		}
	}
	for _, v := range refused {
		if slices.Contains(values, v) {
			w.t.Errorf("%s advertises %q, which is refused", key, v)
		}
	}
}

// idTokenClaims decodes an ID token's payload (verified elsewhere).
func idTokenClaims(t *testing.T, raw string) map[string]any {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS: %q", raw)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]any{}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// Discovery tells the truth (OpenID Connect Discovery 1.0 §3, RFC 8414 §2):
// every member of /.well-known/openid-configuration is walked, each
// advertised value with a request that uses it, and values that are not
// advertised are refused. A member this test does not know fails it, so a
// new capability needs its walk here.
func TestDiscovery_EveryCapabilityIsUsed(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		ctx := context.Background()
		f := newReauthFlow(t, dialect)
		// Both algorithms can sign: RS256 (the default) and ES256.
		if _, err := f.srv.Plugin.Provider.Keys.RotateAlg(ctx, provider.AlgES256); err != nil {
			t.Fatal(err)
		}
		w := &discoveryWalk{reauthFlow: f}
		resp, err := http.Get(f.srv.URL + "/.well-known/openid-configuration")
		if err != nil {
			t.Fatal(err)
		}
		if err := json.NewDecoder(resp.Body).Decode(&w.meta); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		// web/openapi.yaml's ProviderMetadata names exactly the members served.
		documented := openapitest.Load(t).Doc().Components.Schemas["ProviderMetadata"].Value.Properties
		for k := range w.meta {
			if _, ok := documented[k]; !ok {
				t.Errorf("discovery member %s is not in openapi.yaml's ProviderMetadata", k)
			}
		}
		for k := range documented {
			if _, ok := w.meta[k]; !ok {
				t.Errorf("openapi.yaml's ProviderMetadata documents %s, which discovery does not serve", k)
			}
		}
		walked := map[string]bool{}
		walk := func(keys ...string) {
			for _, k := range keys {
				if _, ok := w.meta[k]; !ok {
					t.Errorf("discovery lacks %s", k)
				}
				walked[k] = true
			}
		}

		// The browser signs in once; later requests are answered at once.
		plain, plainSecret := w.client(provider.NewClient{})
		v := oauth2.GenerateVerifier()
		page := f.b.Follow(w.authorizeURL(plain, v), rpRedirect)
		page = f.password(page)
		if page.URL.Query().Get("code") == "" {
			t.Fatalf("first login: %s", page)
		}
		exchange := func(c *storage.Client, secret, code, verifier string) map[string]any {
			t.Helper()
			status, body := w.post("token_endpoint", url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {rpRedirect}, "code_verifier": {verifier}}, c.ID, secret)
			if status != http.StatusOK {
				t.Fatalf("exchange: %d %v", status, body)
			}
			return body
		}
		first := exchange(plain, plainSecret, page.URL.Query().Get("code"), v)

		// issuer, and the endpoints the walks below use.
		walk("issuer", "authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri",
			"introspection_endpoint", "revocation_endpoint", "end_session_endpoint")
		if w.str("issuer") != f.srv.URL {
			t.Fatalf("issuer %s", w.str("issuer"))
		}
		if f.op.Endpoint().TokenURL != w.str("token_endpoint") || f.op.UserInfoEndpoint() != w.str("userinfo_endpoint") {
			t.Fatal("go-oidc read other endpoints")
		}
		accessToken, _ := first["access_token"].(string)
		ui, err := f.op.UserInfo(ctx, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: accessToken}))
		if err != nil || ui.Subject != f.user.ID || ui.Email != f.user.Email {
			t.Fatalf("userinfo: %+v %v", ui, err)
		}
		var jwks jose.JSONWebKeySet
		jr, err := http.Get(w.str("jwks_uri"))
		if err != nil {
			t.Fatal(err)
		}
		_ = json.NewDecoder(jr.Body).Decode(&jwks)
		jr.Body.Close()

		walk("response_types_supported")
		w.each("response_types_supported", map[string]func(*testing.T){
			"code": func(t *testing.T) { w.code(plain, oauth2.GenerateVerifier()) },
		}, "token", "id_token", "code id_token", "code token", "none")
		for _, rt := range []string{"token", "id_token", "code id_token", "code token id_token", "none"} {
			if got := w.authorizeError(plain, "response_type", rt); got != "unsupported_response_type" {
				t.Errorf("response_type=%s: %s, want unsupported_response_type", rt, got)
			}
		}

		walk("response_modes_supported")
		w.each("response_modes_supported", map[string]func(*testing.T){
			"query": func(t *testing.T) { w.code(plain, oauth2.GenerateVerifier(), "response_mode", "query") },
		}, "fragment", "form_post")
		for _, rm := range []string{"fragment", "form_post"} {
			if got := w.authorizeError(plain, "response_mode", rm); got != "unsupported_response_mode" {
				t.Errorf("response_mode=%s: %s, want unsupported_response_mode", rm, got)
			}
		}

		walk("grant_types_supported")
		w.each("grant_types_supported", map[string]func(*testing.T){
			"authorization_code": func(t *testing.T) {
				v := oauth2.GenerateVerifier()
				if exchange(plain, plainSecret, w.code(plain, v), v)["id_token"] == nil {
					t.Fatal("no id_token")
				}
			},
			"refresh_token": func(t *testing.T) {
				status, body := w.post("token_endpoint", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first["refresh_token"].(string)}}, plain.ID, plainSecret)
				if status != http.StatusOK || body["refresh_token"] == nil {
					t.Fatalf("refresh: %d %v", status, body)
				}
			},
			"client_credentials": func(t *testing.T) {
				if status, body := w.post("token_endpoint", url.Values{"grant_type": {"client_credentials"}}, plain.ID, plainSecret); status != http.StatusOK {
					t.Fatalf("client credentials: %d %v", status, body)
				}
			},
		}, "password", "implicit")
		for _, g := range []string{"password", "urn:ietf:params:oauth:grant-type:jwt-bearer", "urn:ietf:params:oauth:grant-type:device_code", "urn:ietf:params:oauth:grant-type:token-exchange"} {
			status, body := w.post("token_endpoint", url.Values{"grant_type": {g}, "username": {f.user.Email}, "password": {f.user.Password}}, plain.ID, plainSecret)
			if status == http.StatusOK {
				t.Errorf("grant_type %s issued tokens: %v", g, body)
			}
			if _, _, err := f.srv.Plugin.Provider.CreateClient(ctx, provider.NewClient{RedirectURIs: []string{rpRedirect}, GrantTypes: []string{g}}); err == nil {
				t.Errorf("a client registered grant type %s", g)
			}
		}

		walk("subject_types_supported")
		w.each("subject_types_supported", map[string]func(*testing.T){
			// public: every client sees the user's one id.
			"public": func(t *testing.T) {
				other, otherSecret := w.client(provider.NewClient{})
				v := oauth2.GenerateVerifier()
				a := idTokenClaims(t, exchange(other, otherSecret, w.code(other, v), v)["id_token"].(string))
				b := idTokenClaims(t, first["id_token"].(string))
				if a["sub"] != f.user.ID || b["sub"] != f.user.ID {
					t.Fatalf("sub %v and %v, want %s", a["sub"], b["sub"], f.user.ID)
				}
			},
		}, "pairwise")

		walk("id_token_signing_alg_values_supported")
		signedWith := func(alg string) func(*testing.T) {
			return func(t *testing.T) {
				c, secret := w.client(provider.NewClient{IDTokenSignedResponseAlg: alg})
				v := oauth2.GenerateVerifier()
				raw := exchange(c, secret, w.code(c, v), v)["id_token"].(string)
				if got := jwsAlg(t, raw); got != alg {
					t.Fatalf("alg %s, want %s", got, alg)
				}
				if _, err := f.op.Verifier(&oidc.Config{ClientID: c.ID, SupportedSigningAlgs: []string{alg}}).Verify(ctx, raw); err != nil {
					t.Fatalf("go-oidc: %v", err)
				}
				var found bool
				for _, k := range jwks.Keys {
					found = found || k.Algorithm == alg
				}
				if !found {
					t.Fatalf("no %s key in the JWKS", alg)
				}
			}
		}
		w.each("id_token_signing_alg_values_supported", map[string]func(*testing.T){"RS256": signedWith("RS256"), "ES256": signedWith("ES256")}, "none", "HS256", "PS256")
		for _, alg := range []string{"none", "HS256", "PS256", "ES384"} {
			if _, _, err := f.srv.Plugin.Provider.CreateClient(ctx, provider.NewClient{RedirectURIs: []string{rpRedirect}, IDTokenSignedResponseAlg: alg}); err == nil {
				t.Errorf("a client chose id_token_signed_response_alg %s", alg)
			}
		}

		walk("scopes_supported")
		w.each("scopes_supported", map[string]func(*testing.T){
			"openid": func(t *testing.T) {
				if first["id_token"] == nil {
					t.Fatal("no id_token for openid")
				}
				c, secret := w.client(provider.NewClient{Scopes: []string{"email"}})
				v := oauth2.GenerateVerifier()
				if body := exchange(c, secret, w.code(c, v, "scope", "email", "nonce", ""), v); body["id_token"] != nil {
					t.Fatalf("an id_token without openid: %v", body)
				}
			},
			"offline_access": func(t *testing.T) {
				v := oauth2.GenerateVerifier()
				if body := exchange(plain, plainSecret, w.code(plain, v, "scope", "openid"), v); body["refresh_token"] != nil {
					t.Fatal("a refresh token without offline_access")
				}
				if first["refresh_token"] == nil {
					t.Fatal("no refresh token for offline_access")
				}
			},
			"email": func(t *testing.T) {
				v := oauth2.GenerateVerifier()
				if c := idTokenClaims(t, exchange(plain, plainSecret, w.code(plain, v, "scope", "openid"), v)["id_token"].(string)); c["email"] != nil {
					t.Fatal("email without the email scope")
				}
				if c := idTokenClaims(t, first["id_token"].(string)); c["email"] != f.user.Email || c["email_verified"] != false {
					t.Fatalf("email claims: %v", c)
				}
			},
		}, "profile", "address", "phone")

		walk("claims_supported")
		v = oauth2.GenerateVerifier()
		codeBody := exchange(plain, plainSecret, w.code(plain, v), v)
		claims := idTokenClaims(t, codeBody["id_token"].(string))
		supported := w.list("claims_supported")
		var given []string
		for k := range claims {
			given = append(given, k)
			if !slices.Contains(supported, k) {
				t.Errorf("the ID token carries %s, which claims_supported does not list", k)
			}
		}
		sort.Strings(given)
		for _, k := range supported {
			if _, ok := claims[k]; !ok {
				t.Errorf("claims_supported lists %s, which the ID token (scopes openid email, a nonce) lacks: %v", k, given)
			}
		}

		walk("code_challenge_methods_supported")
		w.each("code_challenge_methods_supported", map[string]func(*testing.T){
			"S256": func(t *testing.T) {
				v := oauth2.GenerateVerifier()
				code := w.code(plain, v)
				if status, body := w.post("token_endpoint", url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {rpRedirect}, "code_verifier": {oauth2.GenerateVerifier()}}, plain.ID, plainSecret); status != http.StatusBadRequest || body["error"] != "invalid_grant" {
					t.Fatalf("a wrong verifier: %d %v", status, body)
				}
			},
		}, "plain")
		if got := w.authorizeError(plain, "code_challenge_method", "plain", "code_challenge", oauth2.GenerateVerifier()); got != "invalid_request" {
			t.Errorf("code_challenge_method=plain: %s", got)
		}

		walk("acr_values_supported")
		w.each("acr_values_supported", map[string]func(*testing.T){
			"aal1": func(t *testing.T) {
				v := oauth2.GenerateVerifier()
				if c := idTokenClaims(t, exchange(plain, plainSecret, w.code(plain, v, "acr_values", "aal1"), v)["id_token"].(string)); c["acr"] != "aal1" {
					t.Fatalf("acr %v", c["acr"])
				}
			},
			"aal2": func(t *testing.T) {
				v := oauth2.GenerateVerifier()
				page := f.b.Follow(w.authorizeURL(plain, v, "acr_values", "aal2"), rpRedirect)
				if c := idTokenClaims(t, exchange(plain, plainSecret, f.code(page).URL.Query().Get("code"), v)["id_token"].(string)); c["acr"] != "aal2" {
					t.Fatalf("acr %v", c["acr"])
				}
			},
		})

		walk("prompt_values_supported")
		w.each("prompt_values_supported", map[string]func(*testing.T){
			"none": func(t *testing.T) {
				w.code(plain, oauth2.GenerateVerifier(), "prompt", "none")
				if got := (&discoveryWalk{reauthFlow: &reauthFlow{t: t, b: plugintest.NewBrowser(t)}, meta: w.meta}).authorizeError(plain, "prompt", "none"); got != "login_required" {
					t.Fatalf("prompt=none signed out: %s", got)
				}
			},
			"login": func(t *testing.T) {
				page := f.b.Follow(w.authorizeURL(plain, oauth2.GenerateVerifier(), "prompt", "login"), rpRedirect)
				if page.Status != http.StatusOK || page.URL.Path != "/login" {
					t.Fatalf("prompt=login: %s", page)
				}
			},
			"consent": func(t *testing.T) {
				page := f.b.Follow(w.authorizeURL(plain, oauth2.GenerateVerifier(), "prompt", "consent"), rpRedirect)
				if page.Status != http.StatusOK || !strings.Contains(page.Body, `name="consent"`) {
					t.Fatalf("prompt=consent: %s", page)
				}
			},
		}, "select_account", "create")
		for _, p := range []string{"select_account", "create"} {
			if got := w.authorizeError(plain, "prompt", p); got != "invalid_request" {
				t.Errorf("prompt=%s: %s, want invalid_request", p, got)
			}
		}

		walk("ui_locales_supported")
		pageLang := func(tag string) string {
			page := plugintest.NewBrowser(t).Follow(w.authorizeURL(plain, oauth2.GenerateVerifier(), "ui_locales", tag), rpRedirect)
			if page.URL.Path != "/login" {
				t.Fatalf("ui_locales=%s: %s", tag, page)
			}
			i := strings.Index(page.Body, `<html lang="`)
			if i < 0 {
				t.Fatalf("no lang: %s", page.Body)
			}
			rest := page.Body[i+len(`<html lang="`):]
			return rest[:strings.IndexByte(rest, '"')]
		}
		locales := map[string]func(*testing.T){}
		for _, tag := range []string{"en", "de"} {
			locales[tag] = func(t *testing.T) {
				if got := pageLang(tag); got != tag {
					t.Fatalf("ui_locales=%s: lang %s", tag, got)
				}
			}
		}
		w.each("ui_locales_supported", locales, "fr")
		if got := pageLang("fr"); got != w.list("ui_locales_supported")[0] {
			t.Errorf("ui_locales=fr: lang %s, want the default", got)
		}

		// Client authentication per endpoint, each method; the assertion
		// algorithms with a key of each.
		rsKey, esKey := newAssertionKey(t, jose.RS256), newAssertionKey(t, jose.ES256)
		basic, basicSecret := w.client(provider.NewClient{})
		post, postSecret := w.client(provider.NewClient{TokenEndpointAuthMethod: provider.AuthClientSecretPost})
		pkRS, _ := w.client(provider.NewClient{TokenEndpointAuthMethod: provider.AuthPrivateKeyJWT, JWKS: rsKey.jwks(t)})
		pkES, _ := w.client(provider.NewClient{TokenEndpointAuthMethod: provider.AuthPrivateKeyJWT, JWKS: esKey.jwks(t), TokenEndpointAuthSigningAlg: "ES256"})
		public, _ := w.client(provider.NewClient{TokenEndpointAuthMethod: provider.AuthNone})
		// authenticate returns form and Basic credentials of a method.
		type creds struct {
			form       url.Values
			user, pass string
		}
		auth := func(method, endpoint string) (*storage.Client, creds) {
			switch method {
			case provider.AuthClientSecretBasic:
				return basic, creds{url.Values{}, basic.ID, basicSecret}
			case provider.AuthClientSecretPost:
				return post, creds{url.Values{"client_id": {post.ID}, "client_secret": {postSecret}}, "", ""}
			case provider.AuthPrivateKeyJWT:
				return pkRS, creds{url.Values{"client_assertion_type": {jwtBearer}, "client_assertion": {rsKey.assertion(t, pkRS.ID, w.str("token_endpoint"))}}, "", ""}
			case "ES256":
				return pkES, creds{url.Values{"client_assertion_type": {jwtBearer}, "client_assertion": {esKey.assertion(t, pkES.ID, w.str("issuer"))}}, "", ""}
			case "RS256":
				return pkRS, creds{url.Values{"client_assertion_type": {jwtBearer}, "client_assertion": {rsKey.assertion(t, pkRS.ID, w.str("issuer"))}}, "", ""}
			case provider.AuthNone:
				return public, creds{url.Values{"client_id": {public.ID}}, "", ""}
			}
			t.Fatalf("no method %s", method)
			return nil, creds{}
		}
		// tokensOf gets c an access and a refresh token through the code
		// flow, authenticating with cr.
		tokensOf := func(t *testing.T, c *storage.Client, cr creds) (string, string) {
			v := oauth2.GenerateVerifier()
			form := withForm(cr.form, "grant_type", "authorization_code", "code", w.code(c, v), "redirect_uri", rpRedirect, "code_verifier", v)
			status, body := w.post("token_endpoint", form, cr.user, cr.pass)
			if status != http.StatusOK {
				t.Fatalf("token endpoint: %d %v", status, body)
			}
			at, _ := body["access_token"].(string)
			rt, _ := body["refresh_token"].(string)
			return at, rt
		}
		methodChecks := func(endpoint string) func(method string) func(*testing.T) {
			return func(method string) func(*testing.T) {
				return func(t *testing.T) {
					c, cr := auth(method, endpoint)
					at, rt := tokensOf(t, c, cr)
					switch endpoint {
					case "token_endpoint":
						_, cr = auth(method, endpoint)
						if status, body := w.post(endpoint, withForm(cr.form, "grant_type", "refresh_token", "refresh_token", rt), cr.user, cr.pass); status != http.StatusOK {
							t.Fatalf("refresh with %s: %d %v", method, status, body)
						}
					case "introspection_endpoint":
						_, cr = auth(method, endpoint)
						if status, body := w.post(endpoint, withForm(cr.form, "token", at), cr.user, cr.pass); status != http.StatusOK || body["active"] != true {
							t.Fatalf("introspection with %s: %d %v", method, status, body)
						}
					case "revocation_endpoint":
						_, cr = auth(method, endpoint)
						if status, body := w.post(endpoint, withForm(cr.form, "token", rt), cr.user, cr.pass); status != http.StatusOK {
							t.Fatalf("revocation with %s: %d %v", method, status, body)
						}
						_, cr = auth(method, "token_endpoint")
						if status, _ := w.post("token_endpoint", withForm(cr.form, "grant_type", "refresh_token", "refresh_token", rt), cr.user, cr.pass); status == http.StatusOK {
							t.Fatal("a revoked refresh token still works")
						}
					}
				}
			}
		}
		for _, ep := range []string{"token_endpoint", "introspection_endpoint", "revocation_endpoint"} {
			prefix := strings.TrimSuffix(ep, "_endpoint")
			methods := map[string]func(*testing.T){}
			check := methodChecks(ep)
			for _, m := range []string{provider.AuthClientSecretBasic, provider.AuthClientSecretPost, provider.AuthPrivateKeyJWT, provider.AuthNone} {
				methods[m] = check(m)
			}
			if ep == "introspection_endpoint" {
				// RFC 7662 §2.1: a public client cannot introspect.
				delete(methods, provider.AuthNone)
				_, cr := auth(provider.AuthNone, ep)
				if status, body := w.post(ep, withForm(cr.form, "token", accessToken), "", ""); status != http.StatusUnauthorized {
					t.Errorf("introspection without authentication: %d %v", status, body)
				}
			}
			key := prefix + "_endpoint_auth_methods_supported"
			walk(key)
			w.each(key, methods, "client_secret_jwt", "tls_client_auth", "self_signed_tls_client_auth")
			algKey := prefix + "_endpoint_auth_signing_alg_values_supported"
			walk(algKey)
			w.each(algKey, map[string]func(*testing.T){"RS256": check("RS256"), "ES256": check("ES256")}, "HS256", "none")
		}
		for _, m := range []string{"client_secret_jwt", "tls_client_auth", "self_signed_tls_client_auth"} {
			if _, _, err := f.srv.Plugin.Provider.CreateClient(ctx, provider.NewClient{RedirectURIs: []string{rpRedirect}, TokenEndpointAuthMethod: m}); err == nil {
				t.Errorf("a client registered token_endpoint_auth_method %s", m)
			}
		}
		for _, alg := range []string{"HS256", "PS256", "none"} {
			if _, _, err := f.srv.Plugin.Provider.CreateClient(ctx, provider.NewClient{RedirectURIs: []string{rpRedirect}, TokenEndpointAuthMethod: provider.AuthPrivateKeyJWT, JWKS: rsKey.jwks(t), TokenEndpointAuthSigningAlg: alg}); err == nil {
				t.Errorf("a client registered token_endpoint_auth_signing_alg %s", alg)
			}
		}

		// Neither request objects nor request_uri (not advertised).
		walk("request_parameter_supported", "request_uri_parameter_supported")
		if w.meta["request_parameter_supported"] != false || w.meta["request_uri_parameter_supported"] != false {
			t.Errorf("request objects advertised: %v %v", w.meta["request_parameter_supported"], w.meta["request_uri_parameter_supported"])
		}
		object := rsKey.assertion(t, pkRS.ID, w.str("issuer"))
		if got := w.authorizeError(pkRS, "request", object); got != "request_not_supported" {
			t.Errorf("a request object: %s, want request_not_supported", got)
		}
		if got := w.authorizeError(plain, "request_uri", "https://rp.example/request.jwt"); got != "request_uri_not_supported" {
			t.Errorf("a request_uri: %s, want request_uri_not_supported", got)
		}

		// Back-channel logout, then the end session endpoint ends the
		// browser's session with an ES256 hint.
		walk("backchannel_logout_supported", "backchannel_logout_session_supported")
		if w.meta["backchannel_logout_supported"] != true || w.meta["backchannel_logout_session_supported"] != true {
			t.Fatalf("back-channel logout: %v %v", w.meta["backchannel_logout_supported"], w.meta["backchannel_logout_session_supported"])
		}
		lr := newLogoutReceiver(t)
		bc, bcSecret := w.client(provider.NewClient{IDTokenSignedResponseAlg: provider.AlgES256, Logout: storage.ClientLogout{
			BackchannelLogoutURI: lr.URL + "/backchannel", BackchannelLogoutSessionRequired: true, PostLogoutRedirectURIs: []string{rpLoggedOut},
		}})
		v = oauth2.GenerateVerifier()
		hint := exchange(bc, bcSecret, w.code(bc, v), v)["id_token"].(string)
		sid, _ := idTokenClaims(t, hint)["sid"].(string)
		state := randomString(10)
		page = f.b.Follow(w.str("end_session_endpoint")+"?"+url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {rpLoggedOut}, "state": {state}}.Encode(), rpLoggedOut)
		if page.URL.String() != rpLoggedOut+"?state="+state {
			t.Fatalf("end_session_endpoint: %s", page)
		}
		lt := idTokenClaims(t, lr.next(t))
		if lt["sid"] != sid || lt["aud"] != bc.ID && fmt.Sprint(lt["aud"]) != "["+bc.ID+"]" {
			t.Fatalf("logout token %v, want sid %s for %s", lt, sid, bc.ID)
		}

		for k := range w.meta {
			if !walked[k] {
				t.Errorf("discovery advertises %s, which this test does not walk", k)
			}
		}
	})
}
