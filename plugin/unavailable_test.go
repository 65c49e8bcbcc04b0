package plugin_test

import (
	"testing"

	"github.com/google/uuid"

	"github.com/otpstep/otpstep/plugin/plugintest"
)

// With the database gone, the user API answers 503 unavailable with
// Retry-After and /health/ready says so; nothing leaks the cause.
func TestUserAPI_DatabaseUnreachableIs503(t *testing.T) {
	srv := plugintest.Start(t, "sqlite", nil)
	api := newAPIClient(t, srv)
	client := srv.NewLoginUI(t, allUserScopes...)
	alice := srv.NewUser(t)
	tok := srv.LoginWithPassword(t, client, alice).Token.AccessToken
	if err := srv.Store.Close(); err != nil {
		t.Fatal(err)
	}
	resp := api.putSession(tok, uuid.NewString(), alice.ID, false)
	if resp.Status != 503 || resp.errorCode(t) != "unavailable" || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("got %d %s", resp.Status, resp.Body)
	}
	ready, err := srv.HTTP.Client().Get(srv.URL + "/health/ready")
	if err != nil {
		t.Fatal(err)
	}
	ready.Body.Close()
	if ready.StatusCode != 503 {
		t.Fatalf("/health/ready = %d", ready.StatusCode)
	}
}
