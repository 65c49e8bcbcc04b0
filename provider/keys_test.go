package provider

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"
	fjwt "github.com/ory/fosite/token/jwt"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otpstep/otpstep/storage"
)

// fakeKeyStore is an in-memory SigningKeyStore following the contract in its
// doc comment. listHook, when set, runs at the start of every listing.
type fakeKeyStore struct {
	mu       sync.Mutex
	keys     []storage.SigningKey
	lists    int
	listHook func()
}

func cloneKey(k storage.SigningKey) storage.SigningKey {
	k.PublicJWK = bytes.Clone(k.PublicJWK)
	k.SealedJWK = bytes.Clone(k.SealedJWK)
	if k.RetiredAt != nil {
		t := *k.RetiredAt
		k.RetiredAt = &t
	}
	if k.PublishUntil != nil {
		t := *k.PublishUntil
		k.PublishUntil = &t
	}
	return k
}

func (f *fakeKeyStore) AddSigningKey(_ context.Context, k *storage.SigningKey) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, e := range f.keys {
		if e.KID == k.KID {
			return fmt.Errorf("kid %s: duplicate", k.KID)
		}
	}
	f.keys = append(f.keys, cloneKey(*k))
	return nil
}

func (f *fakeKeyStore) ListSigningKeys(context.Context) ([]storage.SigningKey, error) {
	if f.listHook != nil {
		f.listHook()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists++
	out := make([]storage.SigningKey, 0, len(f.keys))
	for _, k := range f.keys {
		out = append(out, cloneKey(k))
	}
	slices.SortStableFunc(out, func(a, b storage.SigningKey) int { return b.CreatedAt.Compare(a.CreatedAt) })
	return out, nil
}

func (f *fakeKeyStore) RetireSigningKeys(_ context.Context, alg, exceptKID string, retiredAt, publishUntil time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.keys {
		if f.keys[i].KID != exceptKID && f.keys[i].RetiredAt == nil && (alg == "" || f.keys[i].Algorithm == alg) {
			r, p := retiredAt, publishUntil
			f.keys[i].RetiredAt, f.keys[i].PublishUntil = &r, &p
		}
	}
	return nil
}

func (f *fakeKeyStore) DeleteUnpublishedSigningKeys(_ context.Context, now time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys = slices.DeleteFunc(f.keys, func(k storage.SigningKey) bool {
		return k.PublishUntil != nil && !k.PublishUntil.After(now)
	})
	return nil
}

func (f *fakeKeyStore) rows() []storage.SigningKey {
	rows, _ := f.ListSigningKeys(context.Background())
	return rows
}

func (f *fakeKeyStore) listCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lists
}

func (f *fakeKeyStore) kids() []string {
	var kids []string
	for _, k := range f.rows() {
		kids = append(kids, k.KID)
	}
	return kids
}

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

const testGrace = time.Hour

func newTestKeySet(t *testing.T, store SigningKeyStore, clock *fakeClock, secret byte, alg string) *KeySet {
	t.Helper()
	sealer, err := NewSealer(testSecret(secret), SealPurposeSigningKeys)
	require.NoError(t, err)
	ks, err := NewKeySet(store, sealer, clock.Now, alg, testGrace)
	require.NoError(t, err)
	return ks
}

// idToken has fosite's OpenID Connect strategy, fed by FositeKey, issue an ID
// token for subject, as the token endpoint does.
func idToken(t *testing.T, ks *KeySet, subject string) string {
	t.Helper()
	strategy := openid.DefaultStrategy{
		Signer: &fjwt.DefaultSigner{GetPrivateKey: ks.FositeKey},
		Config: &fosite.Config{IDTokenIssuer: "https://id.example", MinParameterEntropy: fosite.MinParameterEntropy},
	}
	req := fosite.NewAccessRequest(&openid.DefaultSession{
		Claims:  &fjwt.IDTokenClaims{Subject: subject},
		Headers: &fjwt.Headers{},
	})
	req.Client = &fosite.DefaultClient{ID: "relying-party"}
	req.Form = url.Values{"nonce": {"a-nonce-long-enough"}}
	token, err := strategy.GenerateIDToken(context.Background(), time.Hour, req)
	require.NoError(t, err)
	return token
}

// verifyWithJWKS verifies raw against the key in set named by its kid header,
// as a relying party does, and returns that kid, the alg header and the claims.
func verifyWithJWKS(raw string, set jose.JSONWebKeySet) (kid, alg string, claims map[string]any, err error) {
	tok, err := josejwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil {
		return "", "", nil, err
	}
	if len(tok.Headers) != 1 {
		return "", "", nil, fmt.Errorf("%d headers", len(tok.Headers))
	}
	kid, alg = tok.Headers[0].KeyID, tok.Headers[0].Algorithm
	keys := set.Key(kid)
	if len(keys) != 1 {
		return kid, alg, nil, fmt.Errorf("kid %q: %d keys in JWKS", kid, len(keys))
	}
	if keys[0].Algorithm != alg {
		return kid, alg, nil, fmt.Errorf("kid %q: JWKS alg %s, token alg %s", kid, keys[0].Algorithm, alg)
	}
	if err := tok.Claims(keys[0], &claims); err != nil {
		return kid, alg, nil, err
	}
	return kid, alg, claims, nil
}

func jwksKIDs(set jose.JSONWebKeySet) []string {
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.KeyID)
	}
	return kids
}

func TestNewKeySet_RejectsBadArguments(t *testing.T) {
	sealer, err := NewSealer(testSecret(1), SealPurposeSigningKeys)
	require.NoError(t, err)
	store := &fakeKeyStore{}

	for _, tc := range []struct {
		name   string
		store  SigningKeyStore
		sealer *Sealer
		alg    string
		grace  time.Duration
	}{
		{name: "unknown alg", store: store, sealer: sealer, alg: "HS256", grace: time.Hour},
		{name: "alg none", store: store, sealer: sealer, alg: "none", grace: time.Hour},
		{name: "zero grace", store: store, sealer: sealer, alg: AlgRS256, grace: 0},
		{name: "negative grace", store: store, sealer: sealer, alg: AlgRS256, grace: -time.Second},
		{name: "nil store", store: nil, sealer: sealer, alg: AlgRS256, grace: time.Hour},
		{name: "nil sealer", store: store, sealer: nil, alg: AlgRS256, grace: time.Hour},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ks, err := NewKeySet(tc.store, tc.sealer, nil, tc.alg, tc.grace)
			assert.Error(t, err)
			assert.Nil(t, ks)
		})
	}
}

func TestKeySet_SignerWithoutKeyIsErrNoActiveSigningKey(t *testing.T) {
	ks := newTestKeySet(t, &fakeKeyStore{}, newFakeClock(), 1, "")
	_, _, _, err := ks.Signer(context.Background())
	assert.ErrorIs(t, err, ErrNoActiveSigningKey)
	_, err = ks.FositeKey(context.Background())
	assert.ErrorIs(t, err, ErrNoActiveSigningKey)
}

func TestKeySet_EnsureCreatesExactlyOneKey(t *testing.T) {
	ctx := context.Background()
	store := &fakeKeyStore{}
	clock := newFakeClock()
	ks := newTestKeySet(t, store, clock, 1, "")

	require.NoError(t, ks.Ensure(ctx))
	clock.Advance(time.Minute)
	require.NoError(t, ks.Ensure(ctx))
	// A second process starting later on the same database adds nothing.
	require.NoError(t, newTestKeySet(t, store, clock, 1, "").Ensure(ctx))

	rows := store.rows()
	require.Len(t, rows, 1)
	row := rows[0]
	assert.Equal(t, AlgRS256, row.Algorithm, "RS256 is the default")
	assert.Nil(t, row.RetiredAt)
	assert.Nil(t, row.PublishUntil)
	assert.Equal(t, clock.Now().Add(-time.Minute), row.CreatedAt)

	var pub jose.JSONWebKey
	require.NoError(t, pub.UnmarshalJSON(row.PublicJWK))
	assert.True(t, pub.IsPublic())
	assert.Equal(t, row.KID, pub.KeyID)
	thumb, err := pub.Thumbprint(crypto.SHA256)
	require.NoError(t, err)
	assert.Equal(t, base64.RawURLEncoding.EncodeToString(thumb), row.KID, "kid is the RFC 7638 thumbprint")
	assert.Equal(t, 2048, pub.Key.(*rsa.PublicKey).N.BitLen())
}

func TestKeySet_SignedIDTokenVerifiesAgainstJWKSAndCarriesKid(t *testing.T) {
	for _, alg := range []string{AlgRS256, AlgES256} {
		t.Run(alg, func(t *testing.T) {
			ctx := context.Background()
			store := &fakeKeyStore{}
			ks := newTestKeySet(t, store, newFakeClock(), 1, alg)
			require.NoError(t, ks.Ensure(ctx))
			rows := store.rows()
			require.Len(t, rows, 1)

			kid, key, gotAlg, err := ks.Signer(ctx)
			require.NoError(t, err)
			assert.Equal(t, rows[0].KID, kid)
			assert.Equal(t, alg, gotAlg)
			assert.Equal(t, alg, rows[0].Algorithm)
			switch alg {
			case AlgRS256:
				assert.IsType(t, &rsa.PrivateKey{}, key)
			case AlgES256:
				assert.IsType(t, &ecdsa.PrivateKey{}, key)
			}

			raw := idToken(t, ks, "user-1")
			set, err := ks.JWKS(ctx)
			require.NoError(t, err)
			require.Len(t, set.Keys, 1)
			assert.Equal(t, kid, set.Keys[0].KeyID)
			assert.Equal(t, alg, set.Keys[0].Algorithm)
			assert.Equal(t, "sig", set.Keys[0].Use)
			assert.True(t, set.Keys[0].IsPublic(), "JWKS must hold public keys only")

			tokenKID, tokenAlg, claims, err := verifyWithJWKS(raw, set)
			require.NoError(t, err)
			assert.Equal(t, kid, tokenKID)
			assert.Equal(t, alg, tokenAlg)
			assert.Equal(t, "user-1", claims["sub"])
			assert.Equal(t, "https://id.example", claims["iss"])
			assert.Equal(t, []any{"relying-party"}, claims["aud"])

			// fosite's own Decode (used for id_token_hint) accepts the key too.
			decoded, err := (&fjwt.DefaultSigner{GetPrivateKey: ks.FositeKey}).Decode(ctx, raw)
			require.NoError(t, err)
			assert.Equal(t, kid, decoded.Header["kid"])

			// A token signed by a key that is not in the JWKS does not verify.
			other := newTestKeySet(t, &fakeKeyStore{}, newFakeClock(), 1, alg)
			require.NoError(t, other.Ensure(ctx))
			_, _, _, err = verifyWithJWKS(idToken(t, other, "user-1"), set)
			assert.Error(t, err)
		})
	}
}

func TestKeySet_SignerCachesAndPicksUpAnotherProcessRotationWithinReloadInterval(t *testing.T) {
	ctx := context.Background()
	store := &fakeKeyStore{}
	clock := newFakeClock()
	first := newTestKeySet(t, store, clock, 1, "")
	second := newTestKeySet(t, store, clock, 1, "")

	require.NoError(t, first.Ensure(ctx))
	kid1, _, _, err := second.Signer(ctx)
	require.NoError(t, err)

	lists := store.listCount()
	for range 5 {
		kid, _, _, err := second.Signer(ctx)
		require.NoError(t, err)
		assert.Equal(t, kid1, kid)
	}
	assert.Equal(t, lists, store.listCount(), "signing within the interval must not read storage")

	clock.Advance(time.Second)
	kid2, err := first.Rotate(ctx)
	require.NoError(t, err)
	require.NotEqual(t, kid1, kid2)

	got, _, _, err := first.Signer(ctx)
	require.NoError(t, err)
	assert.Equal(t, kid2, got, "the rotating process signs with the new key at once")

	clock.Advance(SigningKeyReloadInterval - time.Second - time.Nanosecond)
	got, _, _, err = second.Signer(ctx)
	require.NoError(t, err)
	assert.Equal(t, kid1, got, "the other process still uses its cached key")
	// ... which is still published, so its tokens verify.
	set, err := first.JWKS(ctx)
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{kid1, kid2}, jwksKIDs(set))

	clock.Advance(time.Nanosecond)
	got, _, _, err = second.Signer(ctx)
	require.NoError(t, err)
	assert.Equal(t, kid2, got, "the rotation is picked up after the reload interval")
}

func TestKeySet_RotateKeepsOldPublicKeyUntilPublishUntil(t *testing.T) {
	ctx := context.Background()
	store := &fakeKeyStore{}
	clock := newFakeClock()
	ks := newTestKeySet(t, store, clock, 1, "")

	require.NoError(t, ks.Ensure(ctx))
	kid1, _, _, err := ks.Signer(ctx)
	require.NoError(t, err)
	oldToken := idToken(t, ks, "user-1")

	clock.Advance(time.Minute)
	rotatedAt := clock.Now()
	kid2, err := ks.Rotate(ctx)
	require.NoError(t, err)

	got, _, _, err := ks.Signer(ctx)
	require.NoError(t, err)
	assert.Equal(t, kid2, got)
	newToken := idToken(t, ks, "user-1")

	publishUntil := rotatedAt.Add(testGrace + SigningKeyReloadInterval)
	for _, row := range store.rows() {
		if row.KID == kid1 {
			require.NotNil(t, row.RetiredAt)
			require.NotNil(t, row.PublishUntil)
			assert.Equal(t, rotatedAt, *row.RetiredAt)
			assert.Equal(t, publishUntil, *row.PublishUntil)
		} else {
			assert.Nil(t, row.RetiredAt, "the new key is active")
		}
	}

	set, err := ks.JWKS(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{kid2, kid1}, jwksKIDs(set), "newest first, old key still published")
	for _, raw := range []string{oldToken, newToken} {
		_, _, _, err := verifyWithJWKS(raw, set)
		assert.NoError(t, err)
	}

	// Just before publish_until the old key is still there.
	clock.Advance(publishUntil.Sub(clock.Now()) - time.Nanosecond)
	set, err = ks.JWKS(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{kid2, kid1}, jwksKIDs(set))

	// At publish_until it leaves the JWKS, even before it is deleted.
	clock.Advance(time.Nanosecond)
	set, err = ks.JWKS(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{kid2}, jwksKIDs(set))
	_, _, _, err = verifyWithJWKS(oldToken, set)
	assert.Error(t, err)
	assert.Contains(t, store.kids(), kid1)

	// The next rotation deletes it from storage; kid2 is retired and published.
	clock.Advance(time.Minute)
	kid3, err := ks.Rotate(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{kid3, kid2}, store.kids())
	set, err = ks.JWKS(ctx)
	require.NoError(t, err)
	assert.Equal(t, []string{kid3, kid2}, jwksKIDs(set))
}

func TestKeySet_ConcurrentEnsureOnOneDatabaseIsHarmless(t *testing.T) {
	ctx := context.Background()
	store := &fakeKeyStore{}
	clock := newFakeClock()

	// Both processes list before either adds: both see no key.
	var arrived sync.WaitGroup
	arrived.Add(2)
	var calls int
	var callsMu sync.Mutex
	store.listHook = func() {
		callsMu.Lock()
		calls++
		n := calls
		callsMu.Unlock()
		if n <= 2 {
			arrived.Done()
			arrived.Wait()
		}
	}

	a := newTestKeySet(t, store, clock, 1, "")
	b := newTestKeySet(t, store, clock, 1, "")
	errs := make(chan error, 2)
	for _, ks := range []*KeySet{a, b} {
		go func() { errs <- ks.Ensure(ctx) }()
	}
	require.NoError(t, <-errs)
	require.NoError(t, <-errs)

	rows := store.rows()
	require.Len(t, rows, 2, "each process added a key")

	kidA, _, _, err := a.Signer(ctx)
	require.NoError(t, err)
	kidB, _, _, err := b.Signer(ctx)
	require.NoError(t, err)
	assert.Equal(t, kidA, kidB, "both processes sign with the same newest key")

	set, err := a.JWKS(ctx)
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{rows[0].KID, rows[1].KID}, jwksKIDs(set))
}

func TestKeySet_SealedKeyIsNotInClearAndNeedsTheSecret(t *testing.T) {
	for _, alg := range []string{AlgRS256, AlgES256} {
		t.Run(alg, func(t *testing.T) {
			ctx := context.Background()
			store := &fakeKeyStore{}
			clock := newFakeClock()
			ks := newTestKeySet(t, store, clock, 1, alg)
			require.NoError(t, ks.Ensure(ctx))
			_, key, _, err := ks.Signer(ctx)
			require.NoError(t, err)
			row := store.rows()[0]

			var secrets [][]byte
			switch k := key.(type) {
			case *rsa.PrivateKey:
				secrets = append(secrets, k.D.Bytes(), k.Primes[0].Bytes(), k.Primes[1].Bytes())
			case *ecdsa.PrivateKey:
				d, err := k.Bytes()
				require.NoError(t, err)
				secrets = append(secrets, d)
			}
			for _, s := range secrets {
				enc := base64.RawURLEncoding.EncodeToString(s)
				for name, field := range map[string][]byte{"sealed": row.SealedJWK, "public": row.PublicJWK} {
					assert.False(t, bytes.Contains(field, s), "%s JWK holds private key bytes", name)
					assert.False(t, bytes.Contains(field, []byte(enc)), "%s JWK holds base64url private key", name)
				}
			}
			assert.False(t, bytes.Contains(row.SealedJWK, []byte(`"d"`)))
			assert.False(t, bytes.Contains(row.PublicJWK, []byte(`"d"`)))

			// Another system secret cannot open it: no signing, start-up fails,
			// nothing published.
			foreign := newTestKeySet(t, store, clock, 2, alg)
			_, _, _, err = foreign.Signer(ctx)
			assert.ErrorIs(t, err, ErrSealedDataInvalid)
			assert.ErrorIs(t, foreign.Ensure(ctx), ErrSealedDataInvalid)
			set, err := foreign.JWKS(ctx)
			require.NoError(t, err)
			assert.Empty(t, set.Keys)

			// The sealed JWK is bound to its kid: moved to another row, it does not open.
			sealer, err := NewSealer(testSecret(1), SealPurposeSigningKeys)
			require.NoError(t, err)
			_, err = sealer.Open(row.SealedJWK, []byte("another-kid"))
			assert.ErrorIs(t, err, ErrSealedDataInvalid)
			plain, err := sealer.Open(row.SealedJWK, []byte(row.KID))
			require.NoError(t, err)
			assert.True(t, strings.Contains(string(plain), `"d"`), "the sealed JWK is the private key")
		})
	}
}

func TestKeySet_RowsThatDoNotMatchTheirSealedKeyAreRefused(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()

	// Keys this deployment made, and one made with another system secret.
	mine := &fakeKeyStore{}
	require.NoError(t, newTestKeySet(t, mine, clock, 1, "").Ensure(ctx))
	good := mine.rows()[0]
	theirs := &fakeKeyStore{}
	require.NoError(t, newTestKeySet(t, theirs, clock, 2, "").Ensure(ctx))
	foreign := theirs.rows()[0]

	for _, tc := range []struct {
		name   string
		mutate func(r *storage.SigningKey)
	}{
		{name: "public key swapped", mutate: func(r *storage.SigningKey) { r.PublicJWK = foreign.PublicJWK }},
		{name: "kid and public key swapped", mutate: func(r *storage.SigningKey) {
			r.KID, r.PublicJWK = foreign.KID, foreign.PublicJWK
		}},
		{name: "algorithm changed", mutate: func(r *storage.SigningKey) { r.Algorithm = AlgES256 }},
		{name: "inserted without the system secret", mutate: func(r *storage.SigningKey) { *r = foreign }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			row := cloneKey(good)
			tc.mutate(&row)
			store := &fakeKeyStore{keys: []storage.SigningKey{row}}
			// A key set of the row's algorithm, which must examine it.
			ks := newTestKeySet(t, store, clock, 1, row.Algorithm)

			_, _, _, err := ks.Signer(ctx)
			assert.Error(t, err)
			assert.False(t, errors.Is(err, ErrNoActiveSigningKey))
			assert.Error(t, ks.Ensure(ctx))
			set, err := ks.JWKS(ctx)
			require.NoError(t, err)
			assert.Empty(t, set.Keys, "an unverifiable key must not be published")
		})
	}
}

func TestKeySet_KeysCreatedInTheSameInstantResolveToTheSameSigner(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	var rows []storage.SigningKey
	for range 2 {
		s := &fakeKeyStore{}
		require.NoError(t, newTestKeySet(t, s, clock, 1, "").Ensure(ctx))
		rows = append(rows, s.rows()[0])
	}
	require.Equal(t, rows[0].CreatedAt, rows[1].CreatedAt)

	// Storage may return equal timestamps in any order; every process must
	// still pick the same key.
	ab := newTestKeySet(t, &fakeKeyStore{keys: []storage.SigningKey{rows[0], rows[1]}}, clock, 1, "")
	ba := newTestKeySet(t, &fakeKeyStore{keys: []storage.SigningKey{rows[1], rows[0]}}, clock, 1, "")
	kidAB, _, _, err := ab.Signer(ctx)
	require.NoError(t, err)
	kidBA, _, _, err := ba.Signer(ctx)
	require.NoError(t, err)
	assert.Equal(t, kidAB, kidBA)
}
