package provider

import (
	"bytes"
	"testing"
)

// FuzzOTPCheck: whatever a caller submits, the check never panics and
// matches only the exact code (after the documented normalisation).
func FuzzOTPCheck(f *testing.F) {
	for _, s := range []string{"123456", " 123 456 ", "12345", "1234567890", "12345678901", "abcdef", "", "１２３４５６", "123456\x00"} {
		f.Add("123456", s)
	}
	h := otpHasher{key: bytes.Repeat([]byte{7}, 32)}
	f.Fuzz(func(t *testing.T, code, submitted string) {
		stored := h.hash("c1", OTPKindLogin, "s1", "u1", code)
		norm, ok := normalizeOTP(submitted)
		if !ok {
			if norm != "" {
				t.Fatalf("rejected input normalised to %q", norm)
			}
			return
		}
		if len(norm) > maxOTPLength {
			t.Fatalf("normalised %q longer than %d", norm, maxOTPLength)
		}
		got := h.matches(stored, "c1", OTPKindLogin, "s1", "u1", norm)
		if got != (norm == code) {
			t.Fatalf("matches(%q vs %q) = %v", norm, code, got)
		}
		// Bound to its challenge, kind, session and user.
		if norm == code && (h.matches(stored, "c2", OTPKindLogin, "s1", "u1", norm) || h.matches(stored, "c1", OTPKindAccount, "s1", "u1", norm) ||
			h.matches(stored, "c1", OTPKindLogin, "s2", "u1", norm) || h.matches(stored, "c1", OTPKindLogin, "s1", "u2", norm)) {
			t.Fatal("hash not bound to its context")
		}
	})
}

func TestNewOTPCode_DigitsAndLength(t *testing.T) {
	for n := 6; n <= 10; n++ {
		c, err := newOTPCode(cryptoRand{}, n)
		if err != nil || len(c) != n {
			t.Fatalf("length %d: %q %v", n, c, err)
		}
		for _, r := range c {
			if r < '0' || r > '9' {
				t.Fatalf("non-digit in %q", c)
			}
		}
	}
	if _, err := newOTPCode(cryptoRand{}, 11); err == nil {
		t.Fatal("length 11 accepted")
	}
}
