package provider

import (
	"net/url"
	"slices"
	"testing"
)

// TestParseAuthorizeParams_OneWayForPromptAndACR: the standalone authorize
// endpoint split prompt on single spaces and the embedder's gate on any
// whitespace, so "none\tlogin" was prompt=none for one and not the other.
func TestParseAuthorizeParams_OneWayForPromptAndACR(t *testing.T) {
	for _, tc := range []struct {
		prompt, acr string
		want        []string
		none, aal2  bool
	}{
		{"", "", nil, false, false},
		{"none", "aal2", []string{"none"}, true, true},
		{"login  consent", "aal1 aal2", []string{"login", "consent"}, false, true},
		{"none\tlogin", "aal1", []string{"none", "login"}, true, false},
		{" none ", "aal2x", []string{"none"}, true, false},
	} {
		a := ParseAuthorizeParams(url.Values{"prompt": {tc.prompt}, "acr_values": {tc.acr}})
		if !slices.Equal(a.Prompts, tc.want) || a.Prompt("none") != tc.none || a.AsksSecondFactor() != tc.aal2 {
			t.Errorf("prompt %q acr_values %q: %+v, none %v, aal2 %v", tc.prompt, tc.acr, a, a.Prompt("none"), a.AsksSecondFactor())
		}
	}
}
