package provider

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/otpstep/otpstep/provider/config"
)

// sealVersion is the first byte of every sealed value. It names the format
// (AES-256-GCM, 12-byte random nonce, 16-byte tag) so a later format can be
// introduced without guessing.
const sealVersion byte = 1

const (
	sealKeyLength   = 32 // AES-256
	sealNonceLength = 12 // the GCM standard nonce size
)

// ErrSealedDataInvalid is returned by Open when a sealed value does not
// authenticate: it was tampered with or truncated, it belongs to other
// associated data, or it was sealed under another secret or purpose.
var ErrSealedDataInvalid = errors.New("provider: sealed data could not be opened (tampered, truncated, or sealed with another key or associated data)")

// ErrSystemSecretTooShort is returned when the system secret is shorter than
// config.MinSecretLength.
var ErrSystemSecretTooShort = fmt.Errorf("provider: system secret must be at least %d bytes", config.MinSecretLength)

// Sealer encrypts and authenticates small values at rest (sealed private
// JWKs, mail outbox payloads) with AES-256-GCM under a key derived for one
// purpose. A Sealer is safe for concurrent use.
type Sealer struct {
	aead cipher.AEAD
}

// DeriveKey derives n bytes of key material for purpose from the system secret
// with HKDF-SHA256 (RFC 5869), purpose being the HKDF info. Different purposes
// give independent keys, so a key leaked for one use reveals nothing about
// another. The secret must be at least config.MinSecretLength bytes and purpose
// must not be empty.
func DeriveKey(systemSecret []byte, purpose string, n int) ([]byte, error) {
	if len(systemSecret) < config.MinSecretLength {
		return nil, ErrSystemSecretTooShort
	}
	if purpose == "" {
		return nil, errors.New("provider: key purpose must not be empty")
	}
	// RFC 5869 §2.3: L <= 255*HashLen.
	if n <= 0 || n > 255*sha256.Size {
		return nil, fmt.Errorf("provider: derived key length %d out of range 1..%d", n, 255*sha256.Size)
	}
	key, err := hkdf.Key(sha256.New, systemSecret, nil, purpose, n)
	if err != nil {
		return nil, fmt.Errorf("provider: derive %q key: %w", purpose, err)
	}
	return key, nil
}

// NewSealer returns a Sealer whose AES-256-GCM key is derived from the system
// secret for purpose (for example "signing-keys" or "mail-outbox"), so values
// sealed for one purpose cannot be opened by a Sealer for another. Secrets
// shorter than config.MinSecretLength bytes are refused.
func NewSealer(systemSecret []byte, purpose string) (*Sealer, error) {
	key, err := DeriveKey(systemSecret, purpose, sealKeyLength)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("provider: sealer cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("provider: sealer GCM: %w", err)
	}
	return &Sealer{aead: aead}, nil
}

// Seal encrypts and authenticates plaintext, binding it to associatedData
// (which is authenticated, not encrypted: pass what identifies the value, such
// as its row key, so a sealed value cannot be moved to another row). The result
// is version byte || random 12-byte nonce || ciphertext and tag.
func (s *Sealer) Seal(plaintext, associatedData []byte) ([]byte, error) {
	out := make([]byte, 1+sealNonceLength, 1+sealNonceLength+len(plaintext)+s.aead.Overhead())
	out[0] = sealVersion
	nonce := out[1 : 1+sealNonceLength]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("provider: seal nonce: %w", err)
	}
	return s.aead.Seal(out, nonce, plaintext, sealAD(associatedData)), nil
}

// Open reverses Seal. Any failure to authenticate — a changed byte, a wrong
// secret or purpose, other associated data, an unknown version — returns an
// error wrapping ErrSealedDataInvalid; no partial plaintext is ever returned.
func (s *Sealer) Open(sealed, associatedData []byte) ([]byte, error) {
	if len(sealed) < 1+sealNonceLength+s.aead.Overhead() {
		return nil, fmt.Errorf("%w: %d bytes is too short", ErrSealedDataInvalid, len(sealed))
	}
	if sealed[0] != sealVersion {
		return nil, fmt.Errorf("%w: unknown version %d", ErrSealedDataInvalid, sealed[0])
	}
	nonce := sealed[1 : 1+sealNonceLength]
	plaintext, err := s.aead.Open(nil, nonce, sealed[1+sealNonceLength:], sealAD(associatedData))
	if err != nil {
		return nil, ErrSealedDataInvalid
	}
	return plaintext, nil
}

// sealAD prefixes the version byte to the caller's associated data, so the
// format version is authenticated too.
func sealAD(associatedData []byte) []byte {
	ad := make([]byte, 0, 1+len(associatedData))
	ad = append(ad, sealVersion)
	return append(ad, associatedData...)
}
