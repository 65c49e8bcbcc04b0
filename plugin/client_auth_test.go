package plugin_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/oauth2"

	"github.com/otpstep/otpstep/plugin/plugintest"
	"github.com/otpstep/otpstep/provider"
)

const jwtBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// assertionKey is a private_key_jwt client's key: its public JWK Set and a
// signer of RFC 7523 client assertions.
type assertionKey struct {
	priv crypto.Signer
	alg  jose.SignatureAlgorithm
	kid  string
}

func newAssertionKey(t *testing.T, alg jose.SignatureAlgorithm) *assertionKey {
	t.Helper()
	var priv crypto.Signer
	var err error
	switch alg {
	case jose.ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	if err != nil {
		t.Fatal(err)
	}
	return &assertionKey{priv: priv, alg: alg, kid: "k-" + randomString(6)}
}

func (k *assertionKey) jwks(t *testing.T) []byte {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: k.priv.Public(), KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// assertion signs a client assertion for clientID with audience aud.
func (k *assertionKey) assertion(t *testing.T, clientID, aud string) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: jose.JSONWebKey{Key: k.priv, KeyID: k.kid}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	raw, err := jwt.Signed(signer).Claims(jwt.Claims{
		Issuer: clientID, Subject: clientID, Audience: jwt.Audience{aud}, ID: randomString(12),
		IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(5 * time.Minute)),
	}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// authPost posts form to path, with HTTP Basic when user is set, and
// returns the status and the JSON body's "error".
func authPost(t *testing.T, srv *plugintest.Server, path string, form url.Values, user, pass string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Error string `json:"error"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body.Error
}

func withForm(base url.Values, kv ...string) url.Values {
	out := url.Values{}
	for k, v := range base {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out.Set(kv[i], kv[i+1])
	}
	return out
}

// Each registered method works at the token, introspection and revocation
// endpoints through the go-oidc relying party's code flow, and a client may
// only use the method it registered; a private_key_jwt assertion is
// accepted once.
func TestClientAuth_EachMethodAndOnlyTheRegisteredOne(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv := plugintest.Start(t, dialect, nil)
		ctx := context.Background()
		cc := url.Values{"grant_type": {"client_credentials"}}

		// Discovery lists what this test then uses, per endpoint.
		var meta map[string]any
		if err := newRP(t, srv, provider.NewClient{}).provider.Claims(&meta); err != nil {
			t.Fatal(err)
		}
		for key, want := range map[string]string{
			"token_endpoint_auth_methods_supported":                    "[client_secret_basic client_secret_post private_key_jwt none]",
			"introspection_endpoint_auth_methods_supported":            "[client_secret_basic client_secret_post private_key_jwt]",
			"revocation_endpoint_auth_methods_supported":               "[client_secret_basic client_secret_post private_key_jwt none]",
			"token_endpoint_auth_signing_alg_values_supported":         "[RS256 ES256]",
			"introspection_endpoint_auth_signing_alg_values_supported": "[RS256 ES256]",
			"revocation_endpoint_auth_signing_alg_values_supported":    "[RS256 ES256]",
		} {
			if got := fmt.Sprint(meta[key]); got != want {
				t.Errorf("discovery %s = %s, want %s", key, got, want)
			}
		}

		// client_secret_basic (the default): the RP's code flow with the
		// secret in the header; the same secret in the body is refused.
		basic := newRP(t, srv, provider.NewClient{})
		tok, _, _ := basic.codeFlow(t)
		if c, _ := authPost(t, srv, "/oauth2/token", cc, basic.conf.ClientID, basic.secret); c != http.StatusOK {
			t.Fatalf("basic client_credentials: %d", c)
		}
		if c, e := authPost(t, srv, "/oauth2/token", withForm(cc, "client_id", basic.conf.ClientID, "client_secret", basic.secret), "", ""); c != http.StatusUnauthorized || e != "invalid_client" {
			t.Fatalf("basic client with client_secret_post: %d %s", c, e)
		}
		if c, e := authPost(t, srv, "/oauth2/introspect", withForm(url.Values{"token": {tok.AccessToken}}, "client_id", basic.conf.ClientID, "client_secret", basic.secret), "", ""); c != http.StatusUnauthorized || e != "invalid_client" {
			t.Fatalf("basic client introspecting with client_secret_post: %d %s", c, e)
		}
		// RFC 6749 §2.3: two methods in one request.
		if c, e := authPost(t, srv, "/oauth2/token", withForm(cc, "client_secret", basic.secret), basic.conf.ClientID, basic.secret); c != http.StatusBadRequest || e != "invalid_request" {
			t.Fatalf("two methods at once: %d %s", c, e)
		}

		// client_secret_post: the RP sends the secret in the body.
		post := newRP(t, srv, provider.NewClient{TokenEndpointAuthMethod: provider.AuthClientSecretPost})
		post.conf.Endpoint.AuthStyle = oauth2.AuthStyleInParams
		ptok, _, _ := post.codeFlow(t)
		if c, e := authPost(t, srv, "/oauth2/token", cc, post.conf.ClientID, post.secret); c != http.StatusUnauthorized || e != "invalid_client" {
			t.Fatalf("post client with client_secret_basic: %d %s", c, e)
		}
		in := url.Values{"token": {ptok.AccessToken}, "client_id": {post.conf.ClientID}, "client_secret": {post.secret}}
		if c, _ := authPost(t, srv, "/oauth2/introspect", in, "", ""); c != http.StatusOK {
			t.Fatalf("post client introspecting: %d", c)
		}
		if c, _ := authPost(t, srv, "/oauth2/revoke", in, "", ""); c != http.StatusOK {
			t.Fatalf("post client revoking: %d", c)
		}

		// none: a public client, code flow with PKCE and client_id only;
		// it may revoke but neither introspect nor send a secret.
		pub := newRP(t, srv, provider.NewClient{TokenEndpointAuthMethod: provider.AuthNone, GrantTypes: []string{"authorization_code", "refresh_token"}})
		pubTok, _, _ := pub.codeFlow(t)
		if c, e := authPost(t, srv, "/oauth2/introspect", url.Values{"token": {pubTok.AccessToken}, "client_id": {pub.conf.ClientID}}, "", ""); c != http.StatusUnauthorized || e != "invalid_client" {
			t.Fatalf("public client introspecting: %d %s", c, e)
		}
		if c, e := authPost(t, srv, "/oauth2/revoke", url.Values{"token": {pubTok.AccessToken}}, pub.conf.ClientID, "a-secret-it-has-not"); c != http.StatusUnauthorized || e != "invalid_client" {
			t.Fatalf("public client with client_secret_basic: %d %s", c, e)
		}
		if c, _ := authPost(t, srv, "/oauth2/revoke", url.Values{"token": {pubTok.AccessToken}, "client_id": {pub.conf.ClientID}}, "", ""); c != http.StatusOK {
			t.Fatalf("public client revoking: %d", c)
		}

		// private_key_jwt with an inline ES256 JWK Set: the RP's code flow
		// with an assertion, the assertion accepted once, no secret and no
		// bare client_id accepted.
		key := newAssertionKey(t, jose.ES256)
		pk := newRP(t, srv, provider.NewClient{TokenEndpointAuthMethod: provider.AuthPrivateKeyJWT, JWKS: key.jwks(t)})
		if pk.secret != "" {
			t.Fatal("a private_key_jwt client got a secret")
		}
		stored, err := srv.Plugin.Provider.Client(ctx, pk.conf.ClientID)
		if err != nil || stored.TokenEndpointAuthSigningAlg != "ES256" {
			t.Fatalf("stored alg = %q (%v), want ES256 from the key", stored.TokenEndpointAuthSigningAlg, err)
		}
		pk.conf.Endpoint.AuthStyle = oauth2.AuthStyleInParams
		state, verifier := randomString(12), oauth2.GenerateVerifier()
		back := pk.login(t, plugintest.NewBrowser(t), pk.conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier)))
		pkTok, err := pk.conf.Exchange(ctx, back.Query().Get("code"), oauth2.VerifierOption(verifier),
			oauth2.SetAuthURLParam("client_assertion_type", jwtBearer),
			oauth2.SetAuthURLParam("client_assertion", key.assertion(t, pk.conf.ClientID, srv.URL+"/oauth2/token")))
		if err != nil {
			t.Fatalf("private_key_jwt exchange: %v", err)
		}
		a := key.assertion(t, pk.conf.ClientID, srv.URL) // aud = the issuer
		withA := url.Values{"client_assertion_type": {jwtBearer}, "client_assertion": {a}}
		if c, _ := authPost(t, srv, "/oauth2/introspect", withForm(withA, "token", pkTok.AccessToken), "", ""); c != http.StatusOK {
			t.Fatalf("private_key_jwt introspection: %d", c)
		}
		if c, e := authPost(t, srv, "/oauth2/introspect", withForm(withA, "token", pkTok.AccessToken), "", ""); c != http.StatusBadRequest || e != "jti_known" {
			t.Fatalf("replayed assertion: %d %s", c, e)
		}
		if c, e := authPost(t, srv, "/oauth2/token", withForm(cc, "client_assertion_type", jwtBearer, "client_assertion", a), "", ""); c != http.StatusBadRequest || e != "jti_known" {
			t.Fatalf("replayed assertion at the token endpoint: %d %s", c, e)
		}
		other := key.assertion(t, pk.conf.ClientID, srv.URL+"/elsewhere")
		if c, e := authPost(t, srv, "/oauth2/token", withForm(cc, "client_assertion_type", jwtBearer, "client_assertion", other), "", ""); c != http.StatusUnauthorized || e != "invalid_client" {
			t.Fatalf("assertion for another audience: %d %s", c, e)
		}
		if c, e := authPost(t, srv, "/oauth2/token", withForm(cc, "client_id", pk.conf.ClientID), "", ""); c != http.StatusUnauthorized || e != "invalid_client" {
			t.Fatalf("private_key_jwt client with client_id only: %d %s", c, e)
		}
		if c, e := authPost(t, srv, "/oauth2/token", cc, pk.conf.ClientID, "guess"); c != http.StatusUnauthorized || e != "invalid_client" {
			t.Fatalf("private_key_jwt client with client_secret_basic: %d %s", c, e)
		}
		// A secret client may not present an assertion.
		if c, e := authPost(t, srv, "/oauth2/token", withForm(cc, "client_assertion_type", jwtBearer, "client_assertion", key.assertion(t, basic.conf.ClientID, srv.URL)), "", ""); c != http.StatusUnauthorized || e != "invalid_client" {
			t.Fatalf("basic client with an assertion: %d %s", c, e)
		}
		revoke := url.Values{"token": {pkTok.AccessToken}, "client_assertion_type": {jwtBearer}, "client_assertion": {key.assertion(t, pk.conf.ClientID, srv.URL+"/oauth2/token")}}
		if c, _ := authPost(t, srv, "/oauth2/revoke", revoke, "", ""); c != http.StatusOK {
			t.Fatalf("private_key_jwt revocation: %d", c)
		}

		// private_key_jwt with an RS256 key set fetched from jwks_uri.
		rkey := newAssertionKey(t, jose.RS256)
		keySrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(rkey.jwks(t))
		}))
		t.Cleanup(keySrv.Close)
		uri := newRP(t, srv, provider.NewClient{TokenEndpointAuthMethod: provider.AuthPrivateKeyJWT, JWKSURI: keySrv.URL})
		form := withForm(cc, "client_assertion_type", jwtBearer, "client_assertion", rkey.assertion(t, uri.conf.ClientID, srv.URL+"/oauth2/token"))
		if c, e := authPost(t, srv, "/oauth2/token", form, "", ""); c != http.StatusOK {
			t.Fatalf("jwks_uri client_credentials: %d %s", c, e)
		}
		// Signed with a key the client did not register.
		form = withForm(cc, "client_assertion_type", jwtBearer, "client_assertion", newAssertionKey(t, jose.RS256).assertion(t, uri.conf.ClientID, srv.URL+"/oauth2/token"))
		if c, _ := authPost(t, srv, "/oauth2/token", form, "", ""); c == http.StatusOK {
			t.Fatal("an assertion signed with an unregistered key was accepted")
		}
	})
}

// CreateClient refuses registrations that could not authenticate as asked.
func TestClientAuth_CreateClientRefusesInconsistentRegistrations(t *testing.T) {
	srv := plugintest.Start(t, "sqlite", nil)
	ec := newAssertionKey(t, jose.ES256)
	for _, tc := range []struct {
		name string
		nc   provider.NewClient
		want string
	}{
		{"unknown method", provider.NewClient{TokenEndpointAuthMethod: "client_secret_jwt"}, "is not one of"},
		{"public with a secret method", provider.NewClient{Public: true, TokenEndpointAuthMethod: provider.AuthClientSecretPost}, "public client"},
		{"private_key_jwt without keys", provider.NewClient{TokenEndpointAuthMethod: provider.AuthPrivateKeyJWT}, "exactly one"},
		{"private_key_jwt with both", provider.NewClient{TokenEndpointAuthMethod: provider.AuthPrivateKeyJWT, JWKS: ec.jwks(t), JWKSURI: "https://rp.example/jwks"}, "exactly one"},
		{"private_key_jwt with a secret", provider.NewClient{TokenEndpointAuthMethod: provider.AuthPrivateKeyJWT, JWKS: ec.jwks(t), Secret: "sixteen chars or more"}, "no secret"},
		{"keys for a secret client", provider.NewClient{JWKS: ec.jwks(t)}, "for private_key_jwt"},
		{"alg that the key does not fit", provider.NewClient{TokenEndpointAuthMethod: provider.AuthPrivateKeyJWT, JWKS: ec.jwks(t), TokenEndpointAuthSigningAlg: "RS256"}, "fits RS256"},
		{"private key", provider.NewClient{TokenEndpointAuthMethod: provider.AuthPrivateKeyJWT, JWKS: privateJWKS(t, ec)}, "private"},
		{"relative jwks_uri", provider.NewClient{TokenEndpointAuthMethod: provider.AuthPrivateKeyJWT, JWKSURI: "/jwks"}, "absolute"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.nc.RedirectURIs = []string{rpRedirect}
			_, _, err := srv.Plugin.Provider.CreateClient(context.Background(), tc.nc)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func privateJWKS(t *testing.T, k *assertionKey) []byte {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: k.priv, KeyID: k.kid, Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// jwksWithUse is k's public JWK Set with "use" use (omitted when empty)
// and no "alg", as Apache's mod_auth_openidc publishes its key at
// <redirect_uri>?jwks=rsa.
func (k *assertionKey) jwksWithUse(t *testing.T, use string) []byte {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: k.priv.Public(), KeyID: k.kid, Use: use}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// RFC 7517 §4.2: "use" is optional and a key without it may sign. A
// private_key_jwt client whose jwks_uri publishes its key without "use"
// (mod_auth_openidc does) exchanges its code; so does one registered with
// such a set inline (stored with "use":"sig"). A key for "enc" never
// verifies an assertion, and an inline set of only such keys is refused.
func TestClientAuth_PrivateKeyJWTKeyWithoutUse(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv := plugintest.Start(t, dialect, nil)
		ctx := context.Background()
		tokenURL := srv.URL + "/oauth2/token"

		codeFlow := func(r *rp, key *assertionKey) error {
			t.Helper()
			r.conf.Endpoint.AuthStyle = oauth2.AuthStyleInParams
			state, verifier := randomString(12), oauth2.GenerateVerifier()
			back := r.login(t, plugintest.NewBrowser(t), r.conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier)))
			_, err := r.conf.Exchange(ctx, back.Query().Get("code"), oauth2.VerifierOption(verifier),
				oauth2.SetAuthURLParam("client_assertion_type", jwtBearer),
				oauth2.SetAuthURLParam("client_assertion", key.assertion(t, r.conf.ClientID, tokenURL)))
			return err
		}
		serve := func(set []byte) string {
			keySrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write(set)
			}))
			t.Cleanup(keySrv.Close)
			return keySrv.URL + "/redirect_uri?jwks=rsa"
		}

		// jwks_uri, an RSA key without "use" or "alg".
		rkey := newAssertionKey(t, jose.RS256)
		uri := newRP(t, srv, provider.NewClient{TokenEndpointAuthMethod: provider.AuthPrivateKeyJWT, JWKSURI: serve(rkey.jwksWithUse(t, ""))})
		if err := codeFlow(uri, rkey); err != nil {
			t.Fatalf("jwks_uri key without use: %v", err)
		}

		// Inline, a P-256 key without "use": the algorithm is found and the
		// stored set says "sig".
		ekey := newAssertionKey(t, jose.ES256)
		inline := newRP(t, srv, provider.NewClient{TokenEndpointAuthMethod: provider.AuthPrivateKeyJWT, JWKS: ekey.jwksWithUse(t, "")})
		stored, err := srv.Plugin.Provider.Client(ctx, inline.conf.ClientID)
		if err != nil || stored.TokenEndpointAuthSigningAlg != "ES256" || len(stored.GetJSONWebKeys().Keys) != 1 || stored.GetJSONWebKeys().Keys[0].Use != "sig" {
			t.Fatalf("stored %+v (%v), want ES256 and the key marked sig", stored, err)
		}
		if err := codeFlow(inline, ekey); err != nil {
			t.Fatalf("inline key without use: %v", err)
		}

		// "use":"enc" signs nothing: refused inline, and at the token
		// endpoint when a jwks_uri publishes it.
		_, _, err = srv.Plugin.Provider.CreateClient(ctx, provider.NewClient{RedirectURIs: []string{rpRedirect},
			TokenEndpointAuthMethod: provider.AuthPrivateKeyJWT, JWKS: ekey.jwksWithUse(t, "enc")})
		if err == nil || !strings.Contains(err.Error(), "no signing key") {
			t.Fatalf("an inline set of an enc key: %v", err)
		}
		enc := newRP(t, srv, provider.NewClient{TokenEndpointAuthMethod: provider.AuthPrivateKeyJWT, JWKSURI: serve(rkey.jwksWithUse(t, "enc")),
			TokenEndpointAuthSigningAlg: "RS256"})
		form := url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {jwtBearer}, "client_assertion": {rkey.assertion(t, enc.conf.ClientID, tokenURL)}}
		if c, _ := authPost(t, srv, "/oauth2/token", form, "", ""); c == http.StatusOK {
			t.Fatal("an assertion verified with a key for enc")
		}
	})
}

// signed is an assertion of k with exactly the claims c.
func (k *assertionKey) signed(t *testing.T, c jwt.Claims) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: jose.JSONWebKey{Key: k.priv, KeyID: k.kid}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := jwt.Signed(signer).Claims(c).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// RFC 7523 §3's claims are each required of a private_key_jwt assertion:
// iss and sub the client, an aud of ours, an exp not passed, a jti; the
// assertion with all of them passes (the control).
func TestClientAuth_AssertionClaimsAreChecked(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv := plugintest.Start(t, dialect, nil)
		key := newAssertionKey(t, jose.ES256)
		pk := newRP(t, srv, provider.NewClient{TokenEndpointAuthMethod: provider.AuthPrivateKeyJWT, JWKS: key.jwks(t)})
		id, aud, now := pk.conf.ClientID, srv.URL+"/oauth2/token", time.Now()
		good := func() jwt.Claims {
			return jwt.Claims{Issuer: id, Subject: id, Audience: jwt.Audience{aud}, ID: randomString(12),
				IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(5 * time.Minute))}
		}
		for name, edit := range map[string]func(*jwt.Claims){
			"expired":         func(c *jwt.Claims) { c.Expiry = jwt.NewNumericDate(now.Add(-time.Minute)) },
			"no exp":          func(c *jwt.Claims) { c.Expiry = nil },
			"iss not the sub": func(c *jwt.Claims) { c.Issuer = "someone-else" },
			"sub not the iss": func(c *jwt.Claims) { c.Subject = "someone-else" },
			"no aud":          func(c *jwt.Claims) { c.Audience = nil },
			"no jti":          func(c *jwt.Claims) { c.ID = "" },
		} {
			c := good()
			edit(&c)
			form := url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_assertion_type": {jwtBearer}, "client_assertion": {key.signed(t, c)}}
			if code, e := authPost(t, srv, "/oauth2/token", form, "", ""); code == http.StatusOK {
				t.Errorf("%s: accepted (%d %s)", name, code, e)
			}
		}
		form := url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {jwtBearer}, "client_assertion": {key.signed(t, good())}}
		if code, e := authPost(t, srv, "/oauth2/token", form, "", ""); code != http.StatusOK {
			t.Fatalf("the complete assertion: %d %s", code, e)
		}
	})
}
