package storagetest

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otpstep/otpstep/storage"
)

func externalUserTests() []conformanceTest {
	return []conformanceTest{
		{"TestExternalUsers_UpsertCreatesWithTheHostsIDAndNoPassword", func(t *testing.T, s *storage.Store, clk *clock) {
			u := &storage.User{ID: "host-user-1", Email: "Ext@Example.com"}
			require.NoError(t, s.UpsertExternalUser(t.Context(), u))
			assert.Equal(t, &storage.User{ID: "host-user-1", Email: "ext@example.com", CreatedAt: clk.Now(), UpdatedAt: clk.Now()}, u)
			got, err := s.GetUser(t.Context(), "host-user-1")
			require.NoError(t, err)
			assert.Equal(t, u, got)
		}},
		{"TestExternalUsers_UpsertAgainUpdatesTheEmailOnly", func(t *testing.T, s *storage.Store, clk *clock) {
			created := clk.Now()
			require.NoError(t, s.UpsertExternalUser(t.Context(), &storage.User{ID: "host-user-2", Email: "old@example.com"}))
			require.NoError(t, s.SetUserDisabled(t.Context(), "host-user-2", true))
			disabledAt := clk.Now()

			// Same email: nothing changes, not even UpdatedAt.
			clk.Add(time.Minute)
			same := &storage.User{ID: "host-user-2", Email: "OLD@example.com"}
			require.NoError(t, s.UpsertExternalUser(t.Context(), same))
			assert.Equal(t, disabledAt, same.UpdatedAt)
			assert.True(t, same.Disabled, "an upsert never re-enables a user")

			clk.Add(time.Minute)
			moved := &storage.User{ID: "host-user-2", Email: "new@example.com"}
			require.NoError(t, s.UpsertExternalUser(t.Context(), moved))
			assert.Equal(t, &storage.User{ID: "host-user-2", Email: "new@example.com", Disabled: true, CreatedAt: created, UpdatedAt: clk.Now()}, moved)
			_, err := s.GetUserByEmail(t.Context(), "old@example.com")
			requireNotFound(t, err)
		}},
		{"TestExternalUsers_UpsertKeepsALocalUsersPassword", func(t *testing.T, s *storage.Store, _ *clock) {
			local := &storage.User{Email: "local@example.com", PasswordHash: "$argon2id$v=19$m=65536,t=1,p=2$c2FsdA$aGFzaA"}
			require.NoError(t, s.CreateUser(t.Context(), local))
			u := &storage.User{ID: local.ID, Email: "local@example.com"}
			require.NoError(t, s.UpsertExternalUser(t.Context(), u))
			assert.Equal(t, local.PasswordHash, u.PasswordHash)
		}},
		{"TestExternalUsers_EmailOfAnotherUserIsAlreadyExists", func(t *testing.T, s *storage.Store, _ *clock) {
			require.NoError(t, s.UpsertExternalUser(t.Context(), &storage.User{ID: "host-a", Email: "taken@example.com"}))
			err := s.UpsertExternalUser(t.Context(), &storage.User{ID: "host-b", Email: "Taken@example.com"})
			assert.ErrorIs(t, err, storage.ErrAlreadyExists)
			_, err = s.GetUser(t.Context(), "host-b")
			requireNotFound(t, err)
		}},
		{"TestExternalUsers_EmptyIDOrEmailIsRefused", func(t *testing.T, s *storage.Store, _ *clock) {
			assert.Error(t, s.UpsertExternalUser(t.Context(), &storage.User{Email: "x@example.com"}))
			assert.Error(t, s.UpsertExternalUser(t.Context(), &storage.User{ID: "host-c"}))
			users, err := s.ListUsers(t.Context())
			require.NoError(t, err)
			assert.Empty(t, users)
		}},
		{"TestExternalUsers_ConcurrentUpsertsOfOneUserAllSucceed", func(t *testing.T, s *storage.Store, _ *clock) {
			var wg sync.WaitGroup
			errs := make(chan error, 8)
			for range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs <- s.UpsertExternalUser(t.Context(), &storage.User{ID: "host-d", Email: "d@example.com"})
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				assert.NoError(t, err)
			}
		}},
		{"TestExternalUsers_LoginSessionsReferToThem", func(t *testing.T, s *storage.Store, clk *clock) {
			require.NoError(t, s.UpsertExternalUser(t.Context(), &storage.User{ID: "host-e", Email: "e@example.com"}))
			ls := &storage.LoginSession{UserID: "host-e", AMR: []string{"pwd"}, AuthTime: clk.Now(), ExpiresAt: clk.Now().Add(time.Hour)}
			require.NoError(t, s.CreateLoginSession(t.Context(), ls))
		}},
	}
}
