package plugin_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/otpstep/otpstep/plugin"
	"github.com/otpstep/otpstep/plugin/plugintest"
	"github.com/otpstep/otpstep/storage"
)

// A started plugin deletes expired rows every database.purge_interval and
// keeps the live ones.
func TestStart_PurgesExpiredRowsEveryInterval(t *testing.T) {
	forEachDialect(t, func(t *testing.T, dialect string) {
		srv := plugintest.Start(t, dialect, func(c *plugin.Config) { c.Database.PurgeInterval = time.Second })
		ctx := t.Context()
		u := &storage.User{Email: uuid.NewString() + "@example.com"}
		if err := srv.Store.CreateUser(ctx, u); err != nil {
			t.Fatal(err)
		}
		now := srv.Clock.Now()
		session := func(expires time.Time) string {
			ls := &storage.LoginSession{ID: uuid.NewString(), UserID: u.ID, AMR: []string{"pwd"}, AuthTime: now, ExpiresAt: expires}
			if err := srv.Store.CreateLoginSession(ctx, ls); err != nil {
				t.Fatal(err)
			}
			return ls.ID
		}
		expired, live := session(now.Add(-time.Minute)), session(now.Add(time.Hour))

		// An expired session reads as missing at once, but its row keeps its
		// ID taken until the purge deletes it.
		deadline := time.Now().Add(15 * time.Second)
		for {
			again := &storage.LoginSession{ID: expired, UserID: u.ID, AMR: []string{"pwd"}, AuthTime: now, ExpiresAt: now.Add(time.Hour)}
			err := srv.Store.CreateLoginSession(ctx, again)
			if err == nil {
				break
			}
			if !errors.Is(err, storage.ErrAlreadyExists) {
				t.Fatal(err)
			}
			if time.Now().After(deadline) {
				t.Fatal("the expired login session is still there 15 s after start, with database.purge_interval 1s")
			}
			time.Sleep(50 * time.Millisecond)
		}
		if _, err := srv.Store.GetLoginSession(ctx, live); err != nil {
			t.Fatalf("the live login session: %v", err)
		}
	})
}
