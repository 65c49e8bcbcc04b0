package storage

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/token/jwt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func emptySession() *openid.DefaultSession {
	return &openid.DefaultSession{Claims: &jwt.IDTokenClaims{}, Headers: &jwt.Headers{}}
}

// sessionSamples are sessions as otpstep and fosite store them.
func sessionSamples() map[string]*openid.DefaultSession {
	now := time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)
	login := &openid.DefaultSession{
		Claims: &jwt.IDTokenClaims{
			Issuer: "https://id.example", Subject: "0b0c8d1e-user", Audience: []string{"rp"},
			Nonce: "n-0S6_WzA2Mj", RequestedAt: now, AuthTime: now.Add(-time.Minute), IssuedAt: now,
			AuthenticationContextClassReference: "aal2", AuthenticationMethodsReferences: []string{"pwd", "otp"},
			Extra: map[string]interface{}{"sid": "5f0e", "flag": true, "none": nil},
		},
		Headers:   &jwt.Headers{Extra: map[string]interface{}{"kid": "key-1"}},
		ExpiresAt: map[fosite.TokenType]time.Time{fosite.AccessToken: now.Add(time.Hour), fosite.RefreshToken: now.Add(720 * time.Hour)},
		Username:  "alice@example.com",
		Subject:   "0b0c8d1e-user",
	}
	client := &openid.DefaultSession{
		Claims:    &jwt.IDTokenClaims{Subject: "client-1", IssuedAt: now},
		Headers:   &jwt.Headers{},
		ExpiresAt: map[fosite.TokenType]time.Time{fosite.AccessToken: now.Add(time.Hour)},
		Subject:   "client-1",
	}
	local := now.In(time.FixedZone("X", 2*3600))
	return map[string]*openid.DefaultSession{
		"login":        login,
		"client":       client,
		"empty":        emptySession(),
		"zero":         {},
		"empty lists":  {Claims: &jwt.IDTokenClaims{Audience: []string{}, AuthenticationMethodsReferences: []string{}, Extra: map[string]interface{}{}}, Headers: &jwt.Headers{Extra: map[string]interface{}{}}, ExpiresAt: map[fosite.TokenType]time.Time{}},
		"offset times": {Claims: &jwt.IDTokenClaims{AuthTime: local}, ExpiresAt: map[fosite.TokenType]time.Time{fosite.AuthorizeCode: local}},
		// These fall back to json.Unmarshal.
		"escapes":   {Username: `"quoted" \ <tag> & é`, Claims: &jwt.IDTokenClaims{Nonce: "tab\there"}},
		"ext types": {Claims: &jwt.IDTokenClaims{Extra: map[string]interface{}{"n": 1.5, "list": []interface{}{"a"}, "obj": map[string]interface{}{"k": "v"}}}},
	}
}

// jsonDecode is the reference: what json.Unmarshal makes of data.
func jsonDecode(data []byte) (*openid.DefaultSession, error) {
	s := emptySession()
	err := json.Unmarshal(data, s)
	return s, err
}

func TestDecodeSession_SameAsJSONUnmarshal(t *testing.T) {
	fallback := map[string]bool{"escapes": true, "ext types": true}
	for name, want := range sessionSamples() {
		t.Run(name, func(t *testing.T) {
			data, err := json.Marshal(want)
			require.NoError(t, err)
			ref, err := jsonDecode(data)
			require.NoError(t, err)

			got := emptySession()
			claims, headers := got.Claims, got.Headers
			assert.Equal(t, !fallback[name], decodeDefaultSession(data, got), "fast path taken: %s", data)
			require.NoError(t, decodeSession(data, got))
			assert.Equal(t, ref, got)
			if got.Claims != nil {
				assert.Same(t, claims, got.Claims, "decoded into the session's own claims, as json does")
			}
			if got.Headers != nil {
				assert.Same(t, headers, got.Headers)
			}
		})
	}
}

func TestDecodeSession_FallsBackWithoutTouchingTheSession(t *testing.T) {
	for _, data := range []string{
		``, `null`, `[]`, `{`, `{"subject":"a"`, `{"subject":"a"}x`, `{ "subject":"a"}`,
		`{"subject":"a","subject":"b"}`, `{"Subject":"a"}`, `{"other":1}`, `{"subject":null}`,
		`{"subject":"\u0061"}`, `{"subject":"é"}`, `{"expires_at":{"access_token":"yesterday"}}`,
		`{"expires_at":{"access_token":1}}`, `{"id_token_claims":{"exp":"2024-05-06T07:08:09Z","exp":null}}`,
		`{"id_token_claims":{"aud":"rp"}}`, `{"id_token_claims":{"aud":["rp",null]}}`, `{"id_token_claims":{"ext":{"n":1}}}`,
		`{"id_token_claims":{"ext":{"a":trueish}}}`, `{"headers":{"extra":null,"extra":null}}`, `{"headers":{"x":null}}`,
	} {
		s := emptySession()
		require.False(t, decodeDefaultSession([]byte(data), s), data)
		assert.Equal(t, emptySession(), s, "%s: untouched", data)

		ref, refErr := jsonDecode([]byte(data))
		got := emptySession()
		err := decodeSession([]byte(data), got)
		assert.Equal(t, refErr != nil, err != nil, data)
		assert.Equal(t, ref, got, data)
	}
}

func TestDecodeSession_OnlyIntoAnEmptyDefaultSession(t *testing.T) {
	data, err := json.Marshal(sessionSamples()["client"])
	require.NoError(t, err)
	at := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	for name, session := range map[string]func() *openid.DefaultSession{
		"fosite's NewDefaultSession": func() *openid.DefaultSession {
			return &openid.DefaultSession{Claims: &jwt.IDTokenClaims{RequestedAt: at}, Headers: &jwt.Headers{}}
		},
		"with a subject": func() *openid.DefaultSession {
			return &openid.DefaultSession{Claims: &jwt.IDTokenClaims{}, Headers: &jwt.Headers{}, Username: "x"}
		},
		"with expiry": func() *openid.DefaultSession {
			return &openid.DefaultSession{Claims: &jwt.IDTokenClaims{}, Headers: &jwt.Headers{},
				ExpiresAt: map[fosite.TokenType]time.Time{fosite.RefreshToken: at}}
		},
		"no claims": func() *openid.DefaultSession { return &openid.DefaultSession{Headers: &jwt.Headers{}} },
	} {
		s := session()
		assert.False(t, isEmptyDefaultSession(s), name)
		ref := session()
		require.NoError(t, json.Unmarshal(data, ref), name)
		require.NoError(t, decodeSession(data, s), name)
		assert.Equal(t, ref, s, name)
	}
	assert.True(t, isEmptyDefaultSession(emptySession()))
	assert.True(t, isEmptyDefaultSession(&openid.DefaultSession{Claims: &jwt.IDTokenClaims{}, Headers: &jwt.Headers{}, ExpiresAt: map[fosite.TokenType]time.Time{}}))
}

// FuzzDecodeSession: whatever the input, decodeSession leaves the session
// as json.Unmarshal does, and fails when it fails.
func FuzzDecodeSession(f *testing.F) {
	for _, s := range sessionSamples() {
		data, err := json.Marshal(s)
		require.NoError(f, err)
		f.Add(data)
	}
	f.Add([]byte(`{"expires_at":{"a":null,"a":"2024-05-06T07:08:09Z"},"headers":null,"id_token_claims":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ref, refErr := jsonDecode(data)
		got := emptySession()
		err := decodeSession(data, got)
		if (refErr != nil) != (err != nil) {
			t.Fatalf("%q: json.Unmarshal error %v, decodeSession error %v", data, refErr, err)
		}
		if !assert.ObjectsAreEqual(ref, got) {
			t.Fatalf("%q: json.Unmarshal made %#v, decodeSession %#v", data, ref, got)
		}
	})
}

func BenchmarkDecodeSession(b *testing.B) {
	for _, name := range []string{"client", "login"} {
		data, err := json.Marshal(sessionSamples()[name])
		require.NoError(b, err)
		b.Run(name+"/decodeSession", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := decodeSession(data, emptySession()); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/json.Unmarshal", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := json.Unmarshal(data, emptySession()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
