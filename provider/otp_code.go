package provider

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"strings"
)

// OTP kinds. PACE's VerifyOTP names four types (docs/api.md); otpstep issues
// "login" (the second factor of a login session) and "account" (CreateOTP /
// SendmailOTP re-authentication). TOTP kinds exist only as names. "recovery"
// is otpstep's own: the code of an account recovery (recovery.go), which the
// user API never verifies.
const (
	OTPKindLogin      = "login"
	OTPKindAccount    = "account"
	OTPKindRecovery   = "recovery"
	OTPKindTOTP       = "totp"
	OTPKindDeviceTOTP = "device-totp"
)

// maxOTPLength bounds what a verifier reads of a submitted code.
const maxOTPLength = 10

// newOTPCode draws a code of n decimal digits, uniformly in [0, 10^n), by
// rejection sampling: a draw of 64 random bits is kept only below the largest
// multiple of 10^n that 2^64 holds, so the remainder modulo 10^n favours no
// code (no modulo bias). For n <= 10 a draw is rejected with probability
// below 10^10/2^64, about 5e-10. (crypto/rand.Int does the same with big.Int,
// at several times the cost.)
func newOTPCode(random io.Reader, n int) (string, error) {
	if n < 1 || n > maxOTPLength {
		return "", fmt.Errorf("otp length %d out of range", n)
	}
	mod := uint64(1)
	for range n {
		mod *= 10
	}
	// rest is 2^64 mod mod, computed without 2^64: the draws above
	// MaxUint64-rest would make the lowest rest codes more likely.
	rest := (math.MaxUint64%mod + 1) % mod
	var b [8]byte
	for {
		if _, err := io.ReadFull(random, b[:]); err != nil {
			return "", err
		}
		v := binary.LittleEndian.Uint64(b[:])
		if v > math.MaxUint64-rest {
			continue
		}
		x, code := v%mod, make([]byte, n)
		for i := n - 1; i >= 0; i-- {
			code[i] = byte('0' + x%10)
			x /= 10
		}
		return string(code), nil
	}
}

// otpHasher keys the HMAC-SHA256 that stores codes. A stored hash is bound
// to the challenge, its kind, its session and its user, so a hash copied to
// another row never verifies.
type otpHasher struct{ key []byte }

func (h otpHasher) hash(challengeID, kind, sessionID, userID, code string) []byte {
	m := hmac.New(sha256.New, h.key)
	for _, part := range []string{challengeID, kind, sessionID, userID, code} {
		fmt.Fprintf(m, "%d:%s|", len(part), part)
	}
	return m.Sum(nil)
}

// matches compares in constant time (the length of the stored hash is fixed).
func (h otpHasher) matches(stored []byte, challengeID, kind, sessionID, userID, code string) bool {
	return subtle.ConstantTimeCompare(stored, h.hash(challengeID, kind, sessionID, userID, code)) == 1
}

// normalizeOTP trims spaces a user may paste and caps the length: anything
// longer than the longest code, or not all digits, cannot match.
func normalizeOTP(s string) (string, bool) {
	s = strings.TrimSpace(s)
	s = strings.ReplaceAll(s, " ", "")
	if s == "" || len(s) > maxOTPLength {
		return "", false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return "", false
		}
	}
	return s, true
}
