package provider

import (
	"bytes"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otpstep/otpstep/provider/config"
)

func testSecret(b byte) []byte { return bytes.Repeat([]byte{b}, config.MinSecretLength) }

func TestSealer_RoundTrip(t *testing.T) {
	s, err := NewSealer(testSecret(1), "mail-outbox")
	require.NoError(t, err)

	for _, tc := range []struct {
		name      string
		plaintext []byte
		ad        []byte
	}{
		{name: "text with ad", plaintext: []byte("hello, sealed world"), ad: []byte("row-42")},
		{name: "empty plaintext", plaintext: []byte{}, ad: []byte("row-43")},
		{name: "no associated data", plaintext: []byte("x"), ad: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sealed, err := s.Seal(tc.plaintext, tc.ad)
			require.NoError(t, err)
			assert.Equal(t, sealVersion, sealed[0])
			assert.Len(t, sealed, 1+12+len(tc.plaintext)+16)

			opened, err := s.Open(sealed, tc.ad)
			require.NoError(t, err)
			assert.Equal(t, string(tc.plaintext), string(opened))
		})
	}
}

func TestSealer_SealUsesFreshNonce(t *testing.T) {
	s, err := NewSealer(testSecret(1), "mail-outbox")
	require.NoError(t, err)
	a, err := s.Seal([]byte("same"), []byte("ad"))
	require.NoError(t, err)
	b, err := s.Seal([]byte("same"), []byte("ad"))
	require.NoError(t, err)
	assert.NotEqual(t, a[1:13], b[1:13], "nonces must differ")
	assert.NotEqual(t, a, b)
}

func TestSealer_OpenRejectsTampering(t *testing.T) {
	s, err := NewSealer(testSecret(1), "signing-keys")
	require.NoError(t, err)
	sealed, err := s.Seal([]byte("private key material"), []byte("kid-1"))
	require.NoError(t, err)

	flip := func(i int) []byte {
		c := bytes.Clone(sealed)
		c[i] ^= 0x01
		return c
	}
	other, err := NewSealer(testSecret(2), "signing-keys")
	require.NoError(t, err)

	for _, tc := range []struct {
		name   string
		sealer *Sealer
		sealed []byte
		ad     []byte
	}{
		{name: "version byte changed", sealer: s, sealed: flip(0), ad: []byte("kid-1")},
		{name: "nonce changed", sealer: s, sealed: flip(1), ad: []byte("kid-1")},
		{name: "ciphertext changed", sealer: s, sealed: flip(14), ad: []byte("kid-1")},
		{name: "tag changed", sealer: s, sealed: flip(len(sealed) - 1), ad: []byte("kid-1")},
		{name: "truncated", sealer: s, sealed: sealed[:len(sealed)-1], ad: []byte("kid-1")},
		{name: "too short", sealer: s, sealed: sealed[:10], ad: []byte("kid-1")},
		{name: "empty", sealer: s, sealed: nil, ad: []byte("kid-1")},
		{name: "other associated data", sealer: s, sealed: sealed, ad: []byte("kid-2")},
		{name: "other secret", sealer: other, sealed: sealed, ad: []byte("kid-1")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opened, err := tc.sealer.Open(tc.sealed, tc.ad)
			require.Error(t, err)
			assert.True(t, errors.Is(err, ErrSealedDataInvalid), "got %v", err)
			assert.Nil(t, opened)
		})
	}
}

func TestNewSealer_RefusesShortSecret(t *testing.T) {
	_, err := NewSealer(bytes.Repeat([]byte{1}, config.MinSecretLength-1), "mail-outbox")
	assert.ErrorIs(t, err, ErrSystemSecretTooShort)

	_, err = DeriveKey(bytes.Repeat([]byte{1}, config.MinSecretLength-1), "cookie-hash", 32)
	assert.ErrorIs(t, err, ErrSystemSecretTooShort)

	_, err = NewSealer(nil, "mail-outbox")
	assert.ErrorIs(t, err, ErrSystemSecretTooShort)
}

func TestNewSealer_RefusesEmptyPurpose(t *testing.T) {
	_, err := NewSealer(testSecret(1), "")
	assert.Error(t, err)
}

func TestSealer_PurposesAreIndependent(t *testing.T) {
	keys, err := NewSealer(testSecret(1), "signing-keys")
	require.NoError(t, err)
	outbox, err := NewSealer(testSecret(1), "mail-outbox")
	require.NoError(t, err)

	sealed, err := keys.Seal([]byte("secret"), nil)
	require.NoError(t, err)
	_, err = outbox.Open(sealed, nil)
	assert.ErrorIs(t, err, ErrSealedDataInvalid)

	// The same secret and purpose open each other's values (another process).
	again, err := NewSealer(testSecret(1), "signing-keys")
	require.NoError(t, err)
	opened, err := again.Open(sealed, nil)
	require.NoError(t, err)
	assert.Equal(t, "secret", string(opened))
}

func TestDeriveKey(t *testing.T) {
	a, err := DeriveKey(testSecret(1), "signing-keys", 32)
	require.NoError(t, err)
	b, err := DeriveKey(testSecret(1), "mail-outbox", 32)
	require.NoError(t, err)
	a2, err := DeriveKey(testSecret(1), "signing-keys", 32)
	require.NoError(t, err)
	c, err := DeriveKey(testSecret(2), "signing-keys", 32)
	require.NoError(t, err)
	long, err := DeriveKey(testSecret(1), "cookie-block", 64)
	require.NoError(t, err)

	assert.Len(t, a, 32)
	assert.Len(t, long, 64)
	assert.Equal(t, a, a2, "derivation is deterministic")
	assert.NotEqual(t, a, b, "purposes give different keys")
	assert.NotEqual(t, a, c, "secrets give different keys")
	assert.NotEqual(t, testSecret(1), a, "the key is not the secret")

	for _, n := range []int{0, -1, 255*32 + 1} {
		_, err := DeriveKey(testSecret(1), "x", n)
		assert.Error(t, err, "n=%d", n)
	}
}
