package plugin_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/otpstep/otpstep/plugin/plugintest"
	"github.com/otpstep/otpstep/provider"
	"github.com/otpstep/otpstep/storage"
)

// auditEvents counts a user's audit events by type and returns the last
// one of each type.
func auditEvents(t *testing.T, srv *plugintest.Server, userID string) (map[string]int, map[string]storage.AuditEvent) {
	t.Helper()
	events, err := srv.Store.ListAuditEvents(context.Background(), userID, 0)
	if err != nil {
		t.Fatal(err)
	}
	count, last := map[string]int{}, map[string]storage.AuditEvent{}
	for _, e := range events {
		count[e.Type]++
		last[e.Type] = e
	}
	return count, last
}

// A client that is not registered as a login UI holds a token with
// user:sessions:update from a password-only login (--second-factor=false):
// it must neither pass the session's second factor with PUT true nor get
// the login code in the 200 body. A login UI may do both, and every pass
// is audited with its client and address.
func TestUpdateSession_OnlyALoginUIPassesTheSecondFactor(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv := plugintest.Start(t, dialect, nil)
		api := newAPIClient(t, srv)
		plain := srv.NewClient(t, false, allUserScopes...)
		ui := srv.NewLoginUI(t, allUserScopes...)
		alice := srv.NewUser(t)
		ctx := context.Background()

		login := srv.LoginWithPassword(t, plain, alice)
		tok := login.Token.AccessToken
		first := api.putSession(tok, login.SID, alice.ID, false)
		if body := first.json(t); first.Status != http.StatusOK || body["otp"] != nil || body["expiresAt"] == nil {
			t.Fatalf("PUT false by a client that is not a login UI: %d %s, want 200 with expiresAt only", first.Status, first.Body)
		}
		_, last := auditEvents(t, srv, alice.ID)
		if e := last[provider.AuditOTPIssued]; e.Detail["in_response"] != false || e.ClientID != plain.ID {
			t.Fatalf("otp.issued of a code kept out of the response: %+v", e)
		}
		for range 2 { // refused each time, not only the first
			pass := api.putSession(tok, login.SID, alice.ID, true)
			e := pass.errorObject(t)
			if pass.Status != http.StatusForbidden || e["code"] != "insufficient-scope" || !strings.Contains(e["detail"].(string), "login-ui") {
				t.Fatalf("PUT true by a client that is not a login UI: %d %s, want 403 insufficient-scope naming login-ui", pass.Status, pass.Body)
			}
		}
		ls, err := srv.Store.GetLoginSession(ctx, login.SID)
		if err != nil || ls.PassedLoginOTP {
			t.Fatalf("session after the refused PUT true: %+v %v", ls, err)
		}
		count, last := auditEvents(t, srv, alice.ID)
		if count[provider.AuditSessionPassedViaPUT] != 0 || count[provider.AuditSessionPassRefused] != 2 {
			t.Fatalf("audit events: %v", count)
		}
		if e := last[provider.AuditSessionPassRefused]; e.ClientID != plain.ID || e.IP == "" || e.SessionID != login.SID {
			t.Fatalf("session.pass_refused: %+v", e)
		}

		// The login UI: the code in the body, and PUT true passes.
		uiLogin := srv.LoginWithPassword(t, ui, alice)
		sid := uuid.NewString()
		created := api.putSession(uiLogin.Token.AccessToken, sid, alice.ID, false)
		if code, _ := created.json(t)["otp"].(string); created.Status != http.StatusOK || len(code) != 6 {
			t.Fatalf("PUT false by the login UI: %d %s", created.Status, created.Body)
		}
		if pass := api.putSession(uiLogin.Token.AccessToken, sid, alice.ID, true); pass.Status != http.StatusNoContent {
			t.Fatalf("PUT true by the login UI: %d %s", pass.Status, pass.Body)
		}
		if ls, err := srv.Store.GetLoginSession(ctx, sid); err != nil || !ls.PassedLoginOTP {
			t.Fatalf("session after the login UI's PUT true: %+v %v", ls, err)
		}
		_, last = auditEvents(t, srv, alice.ID)
		if e := last[provider.AuditSessionPassedViaPUT]; e.ClientID != ui.ID || e.IP == "" || e.SessionID != sid {
			t.Fatalf("session.passed_via_put: %+v", e)
		}
	})
}
