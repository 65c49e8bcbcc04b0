package provider

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"io"
	"math/big"
	"strings"

	crand "crypto/rand"
)

// OTP kinds. The seed and PACE name four VerifyOTP types; otpstep issues
// "login" (the second factor of a login session) and "account" (CreateOTP /
// SendmailOTP re-authentication). TOTP kinds exist only as names.
const (
	OTPKindLogin      = "login"
	OTPKindAccount    = "account"
	OTPKindTOTP       = "totp"
	OTPKindDeviceTOTP = "device-totp"
)

// maxOTPLength bounds what a verifier reads of a submitted code.
const maxOTPLength = 10

// newOTPCode draws a code of n decimal digits. crypto/rand.Int draws
// uniformly in [0, 10^n) by rejection sampling, so no digit string is more
// likely than another (no modulo bias).
func newOTPCode(random io.Reader, n int) (string, error) {
	if n < 1 || n > maxOTPLength {
		return "", fmt.Errorf("otp length %d out of range", n)
	}
	max := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n)), nil)
	v, err := crand.Int(random, max)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%0*s", n, v.String()), nil
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
