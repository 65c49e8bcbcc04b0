package plugin_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/otpstep/otpstep/plugin"
	"github.com/otpstep/otpstep/plugin/plugintest"
)

// TestSessionCookie_MaxAgeFollowsTheInjectedClock: the login session
// cookie's Max-Age was counted from the wall clock to an expiry set by the
// injected clock, so on a clock two hours ahead a session of one hour got a
// cookie of three. It is the session's lifespan.
func TestSessionCookie_MaxAgeFollowsTheInjectedClock(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) { testSessionCookieMaxAge(t, dialect) })
}

func testSessionCookieMaxAge(t *testing.T, dialect string) {
	srv := plugintest.Start(t, dialect, func(c *plugin.Config) { c.Login.SessionLifespan = time.Hour })
	srv.Clock.Advance(2 * time.Hour)
	alice := srv.NewUser(t)
	b := plugintest.NewBrowser(t)
	page := b.Follow(srv.URL+"/login", "")
	p := b.Submit(page, "/login", url.Values{"email": {alice.Email}, "password": {alice.Password}}, srv.URL)
	resp := http.Response{Header: p.Header}
	var found bool
	for _, c := range resp.Cookies() {
		if c.Name != srv.Plugin.Provider.Config().Login.CookieName {
			continue
		}
		found = true
		// The stored expiry may lose the sub-second part: 3599 or 3600.
		if hour := int(time.Hour / time.Second); c.MaxAge != hour && c.MaxAge != hour-1 {
			t.Errorf("Max-Age %d, want %d", c.MaxAge, hour)
		}
	}
	if !found {
		t.Fatalf("no session cookie in %s (%v)", p, p.Header)
	}
}
