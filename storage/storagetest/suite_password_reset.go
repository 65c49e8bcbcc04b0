package storagetest

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otpstep/otpstep/storage"
)

func passwordResetTests() []conformanceTest {
	return []conformanceTest{
		{"TestPasswordReset_EndsEverySessionAndStartsOneRecovered", func(t *testing.T, s *storage.Store, clk *clock) {
			ctx := t.Context()
			client := newTestClient(t, s, "rp-"+uuid.NewString())
			a := newTestLoginSession(t, s, clk)
			u, err := s.GetUser(ctx, a.UserID)
			require.NoError(t, err)
			a2 := &storage.LoginSession{UserID: a.UserID, AMR: []string{"pwd"}, AuthTime: clk.Now(), ExpiresAt: a.ExpiresAt}
			require.NoError(t, s.CreateLoginSession(ctx, a2))
			b := newTestLoginSession(t, s, clk) // another user
			gA, gA2, gB := newGrantSet(t, s, clk, client, a), newGrantSet(t, s, clk, client, a2), newGrantSet(t, s, clk, client, b)
			newTestOTPChallenge(t, s, clk, "login", a.UserID, a.ID)
			newTestOTPChallenge(t, s, clk, "recovery", a.UserID, "")

			recovered := &storage.LoginSession{UserID: a.UserID, AMR: []string{"otp"}, AuthTime: clk.Now(), ExpiresAt: clk.Now().Add(time.Hour)}
			r := &storage.PasswordReset{UserID: a.UserID, OldPasswordHash: u.PasswordHash, NewPasswordHash: "new-hash",
				Session: recovered, Events: []*storage.AuditEvent{{Type: "recovery.completed", UserID: a.UserID}}}
			require.NoError(t, s.ResetPassword(ctx, r))

			u, err = s.GetUser(ctx, a.UserID)
			require.NoError(t, err)
			assert.Equal(t, "new-hash", u.PasswordHash)
			for _, ls := range []*storage.LoginSession{a, a2} {
				_, err := s.GetLoginSession(ctx, ls.ID)
				requireNotFound(t, err)
			}
			requireNotLive(t, s, "login", a.UserID, a.ID)
			requireNotLive(t, s, "recovery", a.UserID, "")
			requireGrantsRevoked(t, s, gA)
			requireGrantsRevoked(t, s, gA2)
			_, err = s.GetLoginSession(ctx, b.ID)
			require.NoError(t, err)
			requireGrantsLive(t, s, gB)

			// The new session is live, recovered, and cannot pass the second factor.
			got, err := s.GetLoginSession(ctx, recovered.ID)
			require.NoError(t, err)
			assert.True(t, got.Recovered)
			assert.False(t, got.PassedLoginOTP)
			err = s.PassLoginSession(ctx, recovered.ID, a.UserID, "otp")
			require.ErrorIs(t, err, storage.ErrSessionRecovered)
			got, err = s.GetLoginSession(ctx, recovered.ID)
			require.NoError(t, err)
			assert.False(t, got.PassedLoginOTP)
			assert.Equal(t, []string{"otp"}, got.AMR)
			// Another user's id still reads as not found, not as recovered.
			requireNotFound(t, s.PassLoginSession(ctx, recovered.ID, b.UserID, "otp"))
			events, err := s.ListAuditEvents(ctx, a.UserID, 10)
			require.NoError(t, err)
			require.NotEmpty(t, events)
			assert.Equal(t, "recovery.completed", events[0].Type)
		}},
		{"TestPasswordReset_AppliesOnceAndNeverToADisabledUser", func(t *testing.T, s *storage.Store, clk *clock) {
			ctx := t.Context()
			u := &storage.User{Email: uuid.NewString() + "@example.com", PasswordHash: "old-hash"}
			require.NoError(t, s.CreateUser(ctx, u))
			reset := func(old string) error {
				return s.ResetPassword(ctx, &storage.PasswordReset{UserID: u.ID, OldPasswordHash: old, NewPasswordHash: "new-" + uuid.NewString(),
					Session: &storage.LoginSession{UserID: u.ID, AuthTime: clk.Now(), ExpiresAt: clk.Now().Add(time.Hour)}})
			}
			require.NoError(t, reset("old-hash"))
			// The same recovery again finds another hash: nothing changes.
			got, err := s.GetUser(ctx, u.ID)
			require.NoError(t, err)
			requireNotFound(t, reset("old-hash"))
			again, err := s.GetUser(ctx, u.ID)
			require.NoError(t, err)
			assert.Equal(t, got.PasswordHash, again.PasswordHash)

			require.NoError(t, s.SetUserDisabled(ctx, u.ID, true))
			requireNotFound(t, reset(got.PasswordHash))
			again, err = s.GetUser(ctx, u.ID)
			require.NoError(t, err)
			assert.Equal(t, got.PasswordHash, again.PasswordHash)
			requireNotFound(t, reset("x"))
		}},
	}
}
