package provider

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	jose3 "github.com/go-jose/go-jose/v3"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/otpstep/otpstep/storage"
)

// Signing algorithms a KeySet can generate keys for (RFC 7518 §3.1).
const (
	// AlgRS256 is RSASSA-PKCS1-v1_5 with SHA-256, the algorithm every OpenID
	// Connect relying party must support (OIDC Core §15.1). It is the default.
	AlgRS256 = "RS256"
	// AlgES256 is ECDSA on P-256 with SHA-256.
	AlgES256 = "ES256"
)

// SigningKeyReloadInterval is how long a KeySet trusts its cached list of
// signing keys before reading storage again. A rotation done by another
// process is picked up for signing within this interval.
const SigningKeyReloadInterval = 10 * time.Second

// rsaKeyBits is the size of generated RSA keys. 2048 bits is the NIST
// SP 800-57 minimum through 2030 and keeps key generation (at start-up and in
// tests) fast; raise it to 3072 when a deployment's policy asks for it.
const rsaKeyBits = 2048

// SealPurposeSigningKeys is the purpose to derive a KeySet's Sealer for:
// NewSealer(systemSecret, SealPurposeSigningKeys).
const SealPurposeSigningKeys = "signing-keys"

// ErrNoActiveSigningKey is returned by Signer and FositeKey when storage holds
// no active (non-retired) signing key; Ensure creates one.
var ErrNoActiveSigningKey = errors.New("provider: no active signing key (run Ensure or rotate keys)")

// SigningKeyStore is the part of *storage.Store a KeySet uses. Its contract:
//
//   - AddSigningKey inserts k as given (KID is unique; CreatedAt is set by the
//     caller).
//   - ListSigningKeys returns every stored key, newest CreatedAt first.
//   - RetireSigningKeys sets RetiredAt=retiredAt and PublishUntil=publishUntil
//     on every key of algorithm alg ("" = any) that is not yet retired,
//     except exceptKID; keys already retired keep their dates.
//   - DeleteUnpublishedSigningKeys deletes keys whose PublishUntil is set and
//     before now (deleting one exactly at now is fine too: JWKS already leaves
//     a key out from its PublishUntil on).
type SigningKeyStore interface {
	AddSigningKey(ctx context.Context, k *storage.SigningKey) error
	ListSigningKeys(ctx context.Context) ([]storage.SigningKey, error)
	RetireSigningKeys(ctx context.Context, alg, exceptKID string, retiredAt, publishUntil time.Time) error
	DeleteUnpublishedSigningKeys(ctx context.Context, now time.Time) error
}

// KeySet holds the provider's ID-token signing keys: it creates and rotates
// them in storage (private JWKs sealed, the key ID as associated data), signs
// with the newest active key, and publishes the public keys as a JWKS. It keeps
// decrypted keys in memory and re-reads storage at most every
// SigningKeyReloadInterval when signing, so several processes on one database
// converge on the same key. A KeySet is safe for concurrent use.
type KeySet struct {
	store       SigningKeyStore
	sealer      *Sealer
	clock       func() time.Time
	alg         string
	retireGrace time.Duration

	mu       sync.Mutex
	loaded   bool                     // keys reflects storage as of loadedAt
	loadedAt time.Time                // clock() at the last listing
	keys     []storage.SigningKey     // newest first
	private  map[string]crypto.Signer // opened private keys by kid
}

// NewKeySet returns a KeySet over store. sealer seals the private JWKs (derive
// it with NewSealer(systemSecret, SealPurposeSigningKeys)); clock may be nil for
// time.Now. alg is the algorithm of keys it generates from now on: "" or
// AlgRS256 (RSA 2048), or AlgES256 (P-256); existing keys keep their own
// algorithm. retireGrace is how long a retired key stays in the JWKS and must
// be at least the longest lifespan of a token signed with it (the ID-token
// lifespan); it must be positive.
func NewKeySet(store SigningKeyStore, sealer *Sealer, clock func() time.Time, alg string, retireGrace time.Duration) (*KeySet, error) {
	if store == nil {
		return nil, errors.New("provider: key set needs a store")
	}
	if sealer == nil {
		return nil, errors.New("provider: key set needs a sealer")
	}
	if clock == nil {
		clock = time.Now
	}
	switch alg {
	case "":
		alg = AlgRS256
	case AlgRS256, AlgES256:
	default:
		return nil, fmt.Errorf("provider: unsupported signing algorithm %q (want %s or %s)", alg, AlgRS256, AlgES256)
	}
	if retireGrace <= 0 {
		return nil, fmt.Errorf("provider: retire grace must be positive, got %s", retireGrace)
	}
	return &KeySet{
		store:       store,
		sealer:      sealer,
		clock:       clock,
		alg:         alg,
		retireGrace: retireGrace,
		private:     map[string]crypto.Signer{},
	}, nil
}

// Ensure makes sure an active signing key of the default algorithm (the one
// NewKeySet was given) exists, generating and storing one if none does, and checks that the active key opens with this KeySet's
// sealer, so a wrong system secret fails at start-up rather than at the first
// token. Two processes starting at once on one database may both create a
// key; that is harmless: both are published and the newest signs.
func (ks *KeySet) Ensure(ctx context.Context) error {
	ks.mu.Lock()
	defer ks.mu.Unlock()

	if err := ks.reloadLocked(ctx, true); err != nil {
		return err
	}
	if row, ok := ks.newestActiveLocked(ks.alg); ok {
		if _, err := ks.openLocked(row); err != nil {
			return err
		}
		return nil
	}

	row, priv, err := ks.generate(ks.clock(), ks.alg)
	if err != nil {
		return err
	}
	if err := ks.store.AddSigningKey(ctx, row); err != nil {
		return fmt.Errorf("provider: store signing key %s: %w", row.KID, err)
	}
	ks.private[row.KID] = priv
	// Re-list on next use: another process may have added a key concurrently,
	// and every process must agree on the newest.
	ks.loaded = false
	return nil
}

// Rotate is RotateAlg with the default algorithm.
func (ks *KeySet) Rotate(ctx context.Context) (kid string, err error) {
	return ks.RotateAlg(ctx, ks.alg)
}

// RotateAlg generates a new signing key of alg (AlgRS256 or AlgES256),
// which signs that algorithm's tokens from now on, and retires every other
// active key of alg; keys of the other algorithm stay as they are, so both
// can sign at once (clients choose with id_token_signed_response_alg).
// Retired keys stay in the JWKS until
// now + retireGrace + SigningKeyReloadInterval (other processes may sign with
// the old key until their cache expires), so tokens signed with them keep
// verifying until they expire. Keys whose publication has ended are deleted.
// It returns the new key's kid.
func (ks *KeySet) RotateAlg(ctx context.Context, alg string) (kid string, err error) {
	if alg != AlgRS256 && alg != AlgES256 {
		return "", fmt.Errorf("provider: unsupported signing algorithm %q (want %s or %s)", alg, AlgRS256, AlgES256)
	}
	ks.mu.Lock()
	defer ks.mu.Unlock()

	now := ks.clock()
	row, priv, err := ks.generate(now, alg)
	if err != nil {
		return "", err
	}
	if err := ks.store.AddSigningKey(ctx, row); err != nil {
		return "", fmt.Errorf("provider: store signing key %s: %w", row.KID, err)
	}
	ks.private[row.KID] = priv
	ks.loaded = false

	publishUntil := now.Add(ks.retireGrace + SigningKeyReloadInterval)
	if err := ks.store.RetireSigningKeys(ctx, alg, row.KID, now, publishUntil); err != nil {
		// The new key is stored and, being newest, already signs.
		return row.KID, fmt.Errorf("provider: retire signing keys other than %s: %w", row.KID, err)
	}
	if err := ks.store.DeleteUnpublishedSigningKeys(ctx, now); err != nil {
		return row.KID, fmt.Errorf("provider: delete unpublished signing keys: %w", err)
	}
	return row.KID, nil
}

// Signer returns the newest active signing key: its kid, the private key and
// its JWS algorithm ("RS256" or "ES256"). Storage is read at most every
// SigningKeyReloadInterval; decrypted keys are cached by kid. It returns
// ErrNoActiveSigningKey when there is none, and an error wrapping
// ErrSealedDataInvalid when the key does not open with this KeySet's sealer.
func (ks *KeySet) Signer(ctx context.Context) (kid string, key crypto.Signer, alg string, err error) {
	return ks.SignerFor(ctx, "")
}

// SignerFor is Signer for the newest active key of algorithm want ("" =
// the default algorithm); ErrNoActiveSigningKey when there is none of it
// (otpstep keys rotate --alg creates one).
func (ks *KeySet) SignerFor(ctx context.Context, want string) (kid string, key crypto.Signer, alg string, err error) {
	if want == "" {
		want = ks.alg
	}
	ks.mu.Lock()
	defer ks.mu.Unlock()

	if err := ks.reloadLocked(ctx, false); err != nil {
		return "", nil, "", err
	}
	row, ok := ks.newestActiveLocked(want)
	if !ok {
		return "", nil, "", ErrNoActiveSigningKey
	}
	key, err = ks.openLocked(row)
	if err != nil {
		return "", nil, "", err
	}
	return row.KID, key, row.Algorithm, nil
}

// FositeKey returns the key for fosite's jwt.DefaultSigner.GetPrivateKey: a
// go-jose v3 *JSONWebKey (fosite v0.49 signs with go-jose v3) wrapping the
// newest active private key, with KeyID and Algorithm set. go-jose writes
// KeyID into the JWS "kid" header, so ID tokens carry the kid without the
// caller touching the session. Do not put "kid" in the session's ID-token
// headers: fosite passes them as extra headers, which override this one.
//
// The algorithm is the one WithSigningAlg put in ctx (a client's
// id_token_signed_response_alg), else the default.
func (ks *KeySet) FositeKey(ctx context.Context) (interface{}, error) {
	want, _ := ctx.Value(signingAlgKey{}).(string)
	kid, key, alg, err := ks.SignerFor(ctx, want)
	if err != nil {
		return nil, err
	}
	return &jose3.JSONWebKey{Key: key, KeyID: kid, Algorithm: alg, Use: "sig"}, nil
}

// JWKS returns the public keys of every stored key whose publication has not
// ended (active keys and retired keys before their PublishUntil), each with
// kid, alg and use "sig", newest first. It always reads storage, so a key
// rotated in by another process is published at once. A key is published only
// if its sealed private key opens with this KeySet's sealer and matches its
// public key and kid, so a row written to the database by anyone without the
// system secret is never published; such rows are left out.
func (ks *KeySet) JWKS(ctx context.Context) (jose.JSONWebKeySet, error) {
	ks.mu.Lock()
	defer ks.mu.Unlock()

	if err := ks.reloadLocked(ctx, true); err != nil {
		return jose.JSONWebKeySet{}, err
	}
	now := ks.clock()
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
	for _, row := range ks.keys {
		if row.PublishUntil != nil && !now.Before(*row.PublishUntil) {
			continue
		}
		priv, err := ks.openLocked(row)
		if err != nil {
			continue
		}
		set.Keys = append(set.Keys, jose.JSONWebKey{
			Key:       priv.Public(),
			KeyID:     row.KID,
			Algorithm: row.Algorithm,
			Use:       "sig",
		})
	}
	return set, nil
}

// reloadLocked re-lists the keys from storage when forced, when never loaded,
// or when the cached list is older than SigningKeyReloadInterval. Opened
// private keys of kids no longer stored are dropped. ks.mu must be held.
func (ks *KeySet) reloadLocked(ctx context.Context, force bool) error {
	now := ks.clock()
	if !force && ks.loaded {
		age := now.Sub(ks.loadedAt)
		if age >= 0 && age < SigningKeyReloadInterval {
			return nil
		}
	}
	rows, err := ks.store.ListSigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("provider: list signing keys: %w", err)
	}
	// Storage lists newest first; sort again with the kid as tie-breaker so
	// every process picks the same newest key even when two were created in
	// the same instant.
	slices.SortStableFunc(rows, func(a, b storage.SigningKey) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(b.KID, a.KID)
	})
	stored := make(map[string]bool, len(rows))
	for _, r := range rows {
		stored[r.KID] = true
	}
	for kid := range ks.private {
		if !stored[kid] {
			delete(ks.private, kid)
		}
	}
	ks.keys = rows
	ks.loaded = true
	ks.loadedAt = now
	return nil
}

// signingAlgKey is the context key of WithSigningAlg.
type signingAlgKey struct{}

// WithSigningAlg returns ctx asking FositeKey for a key of alg ("" = the
// default): the token endpoint sets the client's
// id_token_signed_response_alg before fosite signs its ID token.
func WithSigningAlg(ctx context.Context, alg string) context.Context {
	return context.WithValue(ctx, signingAlgKey{}, alg)
}

// DefaultAlgorithm is the algorithm of keys Ensure and Rotate create
// (oauth2.signing_alg) and of ID tokens for clients that chose none.
func (ks *KeySet) DefaultAlgorithm() string { return ks.alg }

// Algorithms are the algorithms that have an active key, in the order
// RS256, ES256: what the provider can sign ID tokens with, and so all that
// discovery may advertise. Storage is read at most every
// SigningKeyReloadInterval.
func (ks *KeySet) Algorithms(ctx context.Context) ([]string, error) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if err := ks.reloadLocked(ctx, false); err != nil {
		return nil, err
	}
	var out []string
	for _, alg := range []string{AlgRS256, AlgES256} {
		if _, ok := ks.newestActiveLocked(alg); ok {
			out = append(out, alg)
		}
	}
	return out, nil
}

// newestActiveLocked returns the newest key of alg that is not retired.
func (ks *KeySet) newestActiveLocked(alg string) (storage.SigningKey, bool) {
	for _, row := range ks.keys {
		if row.RetiredAt == nil && row.Algorithm == alg {
			return row, true
		}
	}
	return storage.SigningKey{}, false
}

// openLocked returns the private key of row, from the cache or by opening its
// sealed JWK and checking it against the row: same kid, same algorithm, a key
// type fitting the algorithm, and a public key whose RFC 7638 thumbprint is
// the kid and equals the stored public JWK.
func (ks *KeySet) openLocked(row storage.SigningKey) (crypto.Signer, error) {
	if priv, ok := ks.private[row.KID]; ok {
		return priv, nil
	}
	plain, err := ks.sealer.Open(row.SealedJWK, []byte(row.KID))
	if err != nil {
		return nil, fmt.Errorf("provider: open signing key %s: %w", row.KID, err)
	}
	var jwk jose.JSONWebKey
	err = jwk.UnmarshalJSON(plain)
	clear(plain)
	if err != nil {
		return nil, fmt.Errorf("provider: parse signing key %s: %w", row.KID, err)
	}
	if jwk.IsPublic() || jwk.KeyID != row.KID || jwk.Algorithm != row.Algorithm {
		return nil, fmt.Errorf("provider: signing key %s: sealed JWK does not match its row", row.KID)
	}
	priv, ok := jwk.Key.(crypto.Signer)
	if !ok || !keyFitsAlgorithm(priv, row.Algorithm) {
		return nil, fmt.Errorf("provider: signing key %s: %T is not a %s key", row.KID, jwk.Key, row.Algorithm)
	}
	thumb, err := thumbprintKID(jwk.Public())
	if err != nil {
		return nil, fmt.Errorf("provider: signing key %s: %w", row.KID, err)
	}
	var pub jose.JSONWebKey
	if err := pub.UnmarshalJSON(row.PublicJWK); err != nil {
		return nil, fmt.Errorf("provider: parse public signing key %s: %w", row.KID, err)
	}
	pubThumb, err := thumbprintKID(pub)
	if err != nil {
		return nil, fmt.Errorf("provider: public signing key %s: %w", row.KID, err)
	}
	if thumb != row.KID || pubThumb != row.KID {
		return nil, fmt.Errorf("provider: signing key %s: key thumbprint does not match the kid", row.KID)
	}
	ks.private[row.KID] = priv
	return priv, nil
}

// generate creates a key pair for alg and the row storing it: kid is the
// RFC 7638 SHA-256 thumbprint of the public key (base64url), the private JWK
// is sealed with the kid as associated data.
func (ks *KeySet) generate(now time.Time, alg string) (*storage.SigningKey, crypto.Signer, error) {
	var priv crypto.Signer
	var err error
	switch alg {
	case AlgES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		priv, err = rsa.GenerateKey(rand.Reader, rsaKeyBits)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("provider: generate %s key: %w", alg, err)
	}

	jwk := jose.JSONWebKey{Key: priv, Algorithm: alg, Use: "sig"}
	kid, err := thumbprintKID(jwk.Public())
	if err != nil {
		return nil, nil, err
	}
	jwk.KeyID = kid
	pubJSON, err := jwk.Public().MarshalJSON()
	if err != nil {
		return nil, nil, fmt.Errorf("provider: encode public key %s: %w", kid, err)
	}
	privJSON, err := jwk.MarshalJSON()
	if err != nil {
		return nil, nil, fmt.Errorf("provider: encode private key %s: %w", kid, err)
	}
	sealed, err := ks.sealer.Seal(privJSON, []byte(kid))
	clear(privJSON)
	if err != nil {
		return nil, nil, fmt.Errorf("provider: seal private key %s: %w", kid, err)
	}
	return &storage.SigningKey{
		KID:       kid,
		Algorithm: alg,
		PublicJWK: pubJSON,
		SealedJWK: sealed,
		CreatedAt: now,
	}, priv, nil
}

// thumbprintKID returns the base64url RFC 7638 SHA-256 thumbprint of pub.
func thumbprintKID(pub jose.JSONWebKey) (string, error) {
	if !pub.Valid() || !pub.IsPublic() {
		return "", errors.New("not a valid public key")
	}
	thumb, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(thumb), nil
}

// keyFitsAlgorithm reports whether priv can sign alg: an RSA key of at least
// 2048 bits for RS256 (RFC 7518 §3.3), a P-256 key for ES256 (§3.4).
func keyFitsAlgorithm(priv crypto.Signer, alg string) bool {
	switch k := priv.(type) {
	case *rsa.PrivateKey:
		return alg == AlgRS256 && k.N.BitLen() >= 2048
	case *ecdsa.PrivateKey:
		return alg == AlgES256 && k.Curve == elliptic.P256()
	default:
		return false
	}
}
