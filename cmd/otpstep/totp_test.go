package main

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/otpstep/otpstep/provider"
	"github.com/otpstep/otpstep/storage"
)

// totp list shows a user's TOTPs without secrets; totp delete removes one
// of that user only, audited, and names a wrong id.
func TestCLI_TOTPListAndDelete(t *testing.T) {
	c := newCLI(t)
	var user, other map[string]any
	c.mustJSON(&user, "users", "create", "--email", "totp@example.com", "--password", "long enough pw")
	c.mustJSON(&other, "users", "create", "--email", "other@example.com", "--password", "long enough pw")
	id, otherID := user["id"].(string), other["id"].(string)
	ctx := t.Context()
	s, err := storage.Open(ctx, c.env["OTPSTEP_DATABASE_DSN"], storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	device := &storage.TOTPCredential{UserID: id, Kind: storage.TOTPKindDevice, DeviceID: uuid.NewString(), Sealed: []byte("sealed-device-secret"),
		Period: 30, Digits: 6, Algorithm: "SHA1", ConfirmedAt: time.Now()}
	app := &storage.TOTPCredential{UserID: id, Kind: storage.TOTPKindAuthenticator, Sealed: []byte("sealed-app-secret"), Period: 30, Digits: 6, Algorithm: "SHA1"}
	for _, cred := range []*storage.TOTPCredential{device, app} {
		if err := s.CreateTOTPCredential(ctx, cred); err != nil {
			t.Fatal(err)
		}
	}
	var list []map[string]any
	c.mustJSON(&list, "totp", "list", "--user", id)
	if len(list) != 2 || list[0]["id"] != device.ID || list[0]["kind"] != "device" || list[0]["device_id"] != device.DeviceID || list[0]["confirmed"] != true ||
		list[1]["id"] != app.ID || list[1]["kind"] != "authenticator" || list[1]["confirmed"] != false || list[1]["user_id"] != id {
		t.Fatalf("totp list %v", list)
	}
	out, _ := c.run("totp", "list", "--user", id)
	if strings.Contains(out, "sealed") || strings.Contains(out, "secret") {
		t.Fatalf("totp list shows secret material: %s", out)
	}
	if _, err := c.run("totp", "delete", "--user", otherID, "--id", device.ID); err == nil || !strings.Contains(err.Error(), "has no TOTP") {
		t.Fatalf("delete another user's TOTP: %v", err)
	}
	if _, err := c.run("totp", "delete", "--user", id); err == nil || !strings.Contains(err.Error(), "--id") {
		t.Fatalf("delete without --id: %v", err)
	}
	if out, err := c.run("totp", "delete", "--user", id, "--id", device.ID); err != nil || !strings.Contains(out, "deleted") {
		t.Fatalf("delete: %q %v", out, err)
	}
	c.mustJSON(&list, "totp", "list", "--user", id)
	if len(list) != 1 || list[0]["id"] != app.ID {
		t.Fatalf("totp list after delete %v", list)
	}
	var events []map[string]any
	c.mustJSON(&events, "audit", "list", "--user", id)
	if len(events) != 1 || events[0]["Type"] != provider.AuditTOTPDeleted {
		t.Fatalf("audit events %v", events)
	}
}
