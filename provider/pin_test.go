package provider_test

import (
	"errors"
	"testing"

	"github.com/otpstep/otpstep/provider"
)

// PACE's rules for a new PIN (UpdateUserPIN): 4 digits, at least 3
// different, not a series ascending or descending.
func TestCheckPINRules(t *testing.T) {
	cases := []struct {
		pin  string
		want bool
	}{
		{"8350", true},
		{"1123", true}, // 3 different digits
		{"1357", true}, // steps of 2 are no series
		{"9870", true},
		{"0192", true},
		{"1234", false},
		{"0123", false},
		{"6789", false},
		{"4321", false},
		{"9876", false},
		{"3210", false},
		{"1122", false}, // 2 different digits
		{"0000", false},
		{"1112", false},
		{"123", false},
		{"12345", false},
		{"", false},
		{"12a4", false},
		{"１２３４", false}, // full-width digits are not digits
		{"-123", false},
	}
	for _, tc := range cases {
		err := provider.CheckPINRules(tc.pin)
		if got := err == nil; got != tc.want {
			t.Errorf("CheckPINRules(%q) = %v, want ok %v", tc.pin, err, tc.want)
		}
		if err != nil && !errors.Is(err, provider.ErrPINNotSecure) {
			t.Errorf("CheckPINRules(%q): %v is not ErrPINNotSecure", tc.pin, err)
		}
	}
}
