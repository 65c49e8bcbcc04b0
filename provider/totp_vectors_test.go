package provider

import (
	"encoding/base32"
	"testing"
	"time"

	"github.com/otpstep/otpstep/storage"
)

// RFC 6238 Appendix B: the test vectors for HMAC-SHA-1, -256 and -512 (8
// digits, 30 s steps, T0 = 0, the ASCII seeds of the appendix's reference
// code), through totpCode and matchTOTP, the functions every verification
// uses, with the parameters read as a stored credential gives them.
func TestTOTP_RFC6238AppendixBVectors(t *testing.T) {
	seeds := map[string]string{
		"SHA1":   "12345678901234567890",
		"SHA256": "12345678901234567890123456789012",
		"SHA512": "1234567890123456789012345678901234567890123456789012345678901234",
	}
	vectors := []struct {
		unix int64
		step int64 // T, in the appendix's hex
		want map[string]string
	}{
		{59, 0x1, map[string]string{"SHA1": "94287082", "SHA256": "46119246", "SHA512": "90693936"}},
		{1111111109, 0x23523EC, map[string]string{"SHA1": "07081804", "SHA256": "68084774", "SHA512": "25091201"}},
		{1111111111, 0x23523ED, map[string]string{"SHA1": "14050471", "SHA256": "67062674", "SHA512": "99943326"}},
		{1234567890, 0x273EF07, map[string]string{"SHA1": "89005924", "SHA256": "91819424", "SHA512": "93441116"}},
		{2000000000, 0x3F940AA, map[string]string{"SHA1": "69279037", "SHA256": "90698825", "SHA512": "38618901"}},
		{20000000000, 0x27BC86AA, map[string]string{"SHA1": "65353130", "SHA256": "77737706", "SHA512": "47863826"}},
	}
	for alg, seed := range seeds {
		secret := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString([]byte(seed))
		params, err := totpParamsOf(&storage.TOTPCredential{ID: "vector", Period: 30, Digits: 8, Algorithm: alg})
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vectors {
			at := time.Unix(v.unix, 0).UTC()
			got, err := totpCode(secret, params, at)
			if err != nil {
				t.Fatal(err)
			}
			if got != v.want[alg] {
				t.Errorf("%s at %d: %s, want %s", alg, v.unix, got, v.want[alg])
			}
			step, ok, err := matchTOTP(secret, params, at, v.want[alg])
			if err != nil || !ok || step != v.step {
				t.Errorf("%s at %d: match %v step %#x (%v), want step %#x", alg, v.unix, ok, step, err, v.step)
			}
			// ±1 step matches with that step; ±2 does not match.
			for d, wantOK := range map[int64]bool{-2: false, -1: true, 1: true, 2: false} {
				step, ok, err := matchTOTP(secret, params, at.Add(time.Duration(d)*30*time.Second), v.want[alg])
				if err != nil || ok != wantOK || ok && step != v.step {
					t.Errorf("%s at %d%+d steps: match %v step %#x (%v), want %v", alg, v.unix, d, ok, step, err, wantOK)
				}
			}
		}
	}
}
