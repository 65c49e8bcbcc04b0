package provider

import (
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/ory/fosite"

	"github.com/otpstep/otpstep/storage"
)

// OIDC Core §3.1.2.1: a login is redone for prompt=login and for a max_age
// exceeded in whole seconds; a malformed or negative max_age asks nothing.
func TestNeedsReauthentication_PromptLoginAndMaxAge(t *testing.T) {
	auth := time.Unix(1_000_000, 0)
	ls := &storage.LoginSession{AuthTime: auth}
	for _, tc := range []struct {
		form url.Values
		age  time.Duration
		want bool
	}{
		{url.Values{}, time.Hour, false},
		{url.Values{"prompt": {"login"}}, 0, true},
		{url.Values{"prompt": {"consent login"}}, 0, true},
		{url.Values{"max_age": {"1"}}, time.Second, false},
		{url.Values{"max_age": {"1"}}, 2 * time.Second, true},
		{url.Values{"max_age": {"0"}}, 999 * time.Millisecond, false},
		{url.Values{"max_age": {"0"}}, time.Second, true},
		{url.Values{"max_age": {"-1"}}, time.Hour, false},
		{url.Values{"max_age": {"soon"}}, time.Hour, false},
	} {
		if got := NeedsReauthentication(ls, tc.form, auth.Add(tc.age)); got != tc.want {
			t.Errorf("%v after %s: %v, want %v", tc.form, tc.age, got, tc.want)
		}
	}
}

// The request that comes back after the login has neither prompt=login nor
// max_age, and keeps every other parameter and prompt value.
func TestReauthSatisfied_DropsWhatTheLoginAnswers(t *testing.T) {
	in := url.Values{"prompt": {"login consent"}, "max_age": {"30"}, "acr_values": {"aal2"}, "state": {"s"}}
	out := ReauthSatisfied(in)
	if out.Encode() != "acr_values=aal2&prompt=consent&state=s" {
		t.Fatalf("got %s", out.Encode())
	}
	if in.Get("max_age") != "30" {
		t.Fatal("the input was changed")
	}
	if got := ReauthSatisfied(url.Values{"prompt": {"login"}}); got.Has("prompt") {
		t.Fatalf("prompt=login alone left %v", got)
	}
}

// CheckPrompt: only the advertised values, none alone.
func TestCheckPrompt(t *testing.T) {
	for prompt, ok := range map[string]bool{"": true, "none": true, "login consent": true, "select_account": false, "none login": false, "Login": false} {
		err := CheckPrompt(url.Values{"prompt": {prompt}})
		if (err == nil) != ok || err != nil && !errors.Is(err, fosite.ErrInvalidRequest) {
			t.Errorf("prompt %q: %v", prompt, err)
		}
	}
}
