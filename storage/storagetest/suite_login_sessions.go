package storagetest

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otpstep/otpstep/storage"
)

// newTestLoginSession stores a user and a login session of it, valid for an hour.
func newTestLoginSession(t *testing.T, s *storage.Store, clk *clock) *storage.LoginSession {
	t.Helper()
	u := &storage.User{Email: uuid.NewString() + "@example.com"}
	require.NoError(t, s.CreateUser(t.Context(), u))
	ls := &storage.LoginSession{
		UserID:    u.ID,
		AMR:       []string{"pwd"},
		AuthTime:  clk.Now(),
		ExpiresAt: clk.Now().Add(time.Hour),
	}
	require.NoError(t, s.CreateLoginSession(t.Context(), ls))
	return ls
}

func loginSessionTests() []conformanceTest {
	return []conformanceTest{
		{"TestLoginSessions_CreateGetUpdateDelete", func(t *testing.T, s *storage.Store, clk *clock) {
			ctx := t.Context()
			ls := newTestLoginSession(t, s, clk)
			_, err := uuid.Parse(ls.ID)
			require.NoError(t, err, "ID must be a UUID")
			assert.Equal(t, clk.Now(), ls.CreatedAt)

			got, err := s.GetLoginSession(ctx, ls.ID)
			require.NoError(t, err)
			assert.Equal(t, ls, got)

			clk.Add(time.Minute)
			ls.PassedLoginOTP = true
			ls.AMR = append(ls.AMR, "otp")
			ls.ExpiresAt = clk.Now().Add(2 * time.Hour)
			require.NoError(t, s.UpdateLoginSession(ctx, ls))
			assert.Equal(t, clk.Now(), ls.UpdatedAt)
			got, err = s.GetLoginSession(ctx, ls.ID)
			require.NoError(t, err)
			assert.Equal(t, ls, got)
			assert.Equal(t, []string{"pwd", "otp"}, got.AMR)

			require.NoError(t, s.DeleteLoginSession(ctx, ls.ID))
			_, err = s.GetLoginSession(ctx, ls.ID)
			requireNotFound(t, err)
			requireNotFound(t, s.DeleteLoginSession(ctx, ls.ID))
		}},
		{"TestLoginSessions_ExpiredIsNotFoundAndItsIDNotTakenOver", func(t *testing.T, s *storage.Store, clk *clock) {
			ctx := t.Context()
			ls := newTestLoginSession(t, s, clk)
			clk.Add(time.Hour) // ExpiresAt reached
			_, err := s.GetLoginSession(ctx, ls.ID)
			requireNotFound(t, err)
			requireNotFound(t, s.UpdateLoginSession(ctx, ls))

			again := &storage.LoginSession{ID: ls.ID, UserID: ls.UserID, AuthTime: clk.Now(), ExpiresAt: clk.Now().Add(time.Hour)}
			assert.ErrorIs(t, s.CreateLoginSession(ctx, again), storage.ErrAlreadyExists, "a sid is never taken over")
			_, err = s.GetLoginSession(ctx, ls.ID)
			requireNotFound(t, err)

			// Once purged, the row is gone for good.
			_, err = s.PurgeExpired(ctx, clk.Now().Add(time.Microsecond))
			require.NoError(t, err)
			requireNotFound(t, s.DeleteLoginSession(ctx, ls.ID))
		}},
		{"TestLoginSessions_LiveDuplicateIDIsAlreadyExists", func(t *testing.T, s *storage.Store, clk *clock) {
			ls := newTestLoginSession(t, s, clk)
			dup := &storage.LoginSession{ID: ls.ID, UserID: ls.UserID, AuthTime: clk.Now(), ExpiresAt: clk.Now().Add(time.Hour)}
			assert.ErrorIs(t, s.CreateLoginSession(t.Context(), dup), storage.ErrAlreadyExists)
		}},
		{"TestLoginSessions_DuplicateIDLeavesTheTransactionUsable", func(t *testing.T, s *storage.Store, clk *clock) {
			// The session API creates a session and its first challenge in
			// one transaction; a taken sid must not abort it (PostgreSQL
			// aborts a transaction on a unique violation).
			ls := newTestLoginSession(t, s, clk)
			err := s.InTx(t.Context(), func(ctx context.Context) error {
				dup := &storage.LoginSession{ID: ls.ID, UserID: ls.UserID, AuthTime: clk.Now(), ExpiresAt: clk.Now().Add(time.Hour)}
				assert.ErrorIs(t, s.CreateLoginSession(ctx, dup), storage.ErrAlreadyExists)
				_, err := s.GetLoginSession(ctx, ls.ID)
				return err
			})
			require.NoError(t, err)
		}},
		{"TestLoginSessions_UnknownUserIsNotFound", func(t *testing.T, s *storage.Store, clk *clock) {
			ls := &storage.LoginSession{UserID: "no-such-user", AuthTime: clk.Now(), ExpiresAt: clk.Now().Add(time.Hour)}
			assert.ErrorIs(t, s.CreateLoginSession(t.Context(), ls), storage.ErrNotFound)
		}},
		{"TestLoginSessions_UpdateMissingIsNotFound", func(t *testing.T, s *storage.Store, clk *clock) {
			ls := &storage.LoginSession{ID: "missing", UserID: "x", AuthTime: clk.Now(), ExpiresAt: clk.Now().Add(time.Hour)}
			requireNotFound(t, s.UpdateLoginSession(t.Context(), ls))
		}},
	}
}
