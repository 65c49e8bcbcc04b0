package web

import (
	"errors"
	"strings"
	"testing"

	"github.com/otpstep/otpstep/provider"
	"github.com/otpstep/otpstep/provider/config"
)

// TestSealCookie_OpensOnlyUnchangedUnderItsOwnName: session and flow cookies
// are sealed one way (sealCookie, provider.Sealer); the session cookie used
// gorilla/securecookie beside it. A value opens under the name it was sealed
// for, and not under another name, another purpose, or changed by a byte.
func TestSealCookie_OpensOnlyUnchangedUnderItsOwnName(t *testing.T) {
	secret := []byte(strings.Repeat("s", config.MinSecretLength))
	sessions, err := provider.NewSealer(secret, "session-cookie")
	if err != nil {
		t.Fatal(err)
	}
	flows, err := provider.NewSealer(secret, "upstream-flow")
	if err != nil {
		t.Fatal(err)
	}
	v, err := sealCookie(sessions, []byte("sid.key"), sessionCookieAD("otpstep_session"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(v, "=+/;, ") {
		t.Errorf("value %q is not a bare cookie value", v)
	}
	if got, err := openCookie(sessions, v, sessionCookieAD("otpstep_session")); err != nil || string(got) != "sid.key" {
		t.Fatalf("open = %q, %v", got, err)
	}
	flipped := []byte(v)
	flipped[len(flipped)/2] ^= 1
	for name, open := range map[string]func() ([]byte, error){
		"another name":    func() ([]byte, error) { return openCookie(sessions, v, sessionCookieAD("other")) },
		"another purpose": func() ([]byte, error) { return openCookie(flows, v, sessionCookieAD("otpstep_session")) },
		"a changed byte": func() ([]byte, error) {
			return openCookie(sessions, string(flipped), sessionCookieAD("otpstep_session"))
		},
		"not base64": func() ([]byte, error) { return openCookie(sessions, "!"+v, sessionCookieAD("otpstep_session")) },
	} {
		if got, err := open(); !errors.Is(err, provider.ErrSealedDataInvalid) || got != nil {
			t.Errorf("%s: open = %q, %v; want ErrSealedDataInvalid", name, got, err)
		}
	}
}
