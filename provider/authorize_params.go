package provider

import (
	"net/url"
	"slices"
	"strings"
)

// AuthorizeParams are the authorize request parameters otpstep decides on
// itself, beyond what fosite checks: prompt and acr_values, space-delimited
// lists (OIDC Core §3.1.2.1). The standalone authorize endpoint and an
// embedder's gate (plugin.CheckAuthorize) read them here, one way.
type AuthorizeParams struct {
	Prompts   []string
	ACRValues []string
}

// ParseAuthorizeParams reads prompt and acr_values from an authorize
// request's form; runs of whitespace separate values, empty ones are dropped.
func ParseAuthorizeParams(form url.Values) AuthorizeParams {
	return AuthorizeParams{Prompts: strings.Fields(form.Get("prompt")), ACRValues: strings.Fields(form.Get("acr_values"))}
}

// Prompt reports whether the request carries prompt value v ("none",
// "login", "consent").
func (a AuthorizeParams) Prompt(v string) bool { return slices.Contains(a.Prompts, v) }

// AsksSecondFactor reports whether the request asks for acr_values=aal2
// (fosite does not enforce acr_values; otpstep does).
func (a AuthorizeParams) AsksSecondFactor() bool {
	return slices.Contains(a.ACRValues, ACRSecondFactor)
}
