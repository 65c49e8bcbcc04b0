package storagetest

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otpstep/otpstep/storage"
)

func migrateTests() []conformanceTest {
	return []conformanceTest{
		{"TestMigrate_TwiceIsIdempotentAndStatusListsInit", func(t *testing.T, s *storage.Store, _ *clock) {
			require.NoError(t, s.Ping(t.Context()))
			assert.Contains(t, []string{storage.DialectPostgres, storage.DialectSQLite}, s.Dialect())
			// The store comes migrated: two more runs change nothing.
			require.NoError(t, s.Migrate(t.Context()))
			require.NoError(t, s.Migrate(t.Context()))
			status, err := s.MigrationStatus(t.Context())
			require.NoError(t, err)
			require.NotEmpty(t, status)
			assert.Equal(t, int64(1), status[0].Version)
			assert.Equal(t, "00001_init.sql", status[0].Name)
			for _, st := range status {
				assert.NotNil(t, st.AppliedAt, "migration %s not applied", st.Name)
			}
		}},
		{"TestMigrate_StatusListsSecondFactor", func(t *testing.T, s *storage.Store, _ *clock) {
			status, err := s.MigrationStatus(t.Context())
			require.NoError(t, err)
			require.GreaterOrEqual(t, len(status), 2)
			assert.Equal(t, int64(2), status[1].Version)
			assert.Equal(t, "00002_second_factor.sql", status[1].Name)
			assert.NotNil(t, status[1].AppliedAt)
		}},
	}
}

func userTests() []conformanceTest {
	return []conformanceTest{
		{"TestUsers_CreateFillsIDLowercasesEmailAndGets", func(t *testing.T, s *storage.Store, clk *clock) {
			u := &storage.User{Email: "Alice@Example.COM", PasswordHash: "$argon2id$v=19$m=65536,t=1,p=2$c2FsdA$aGFzaA"}
			require.NoError(t, s.CreateUser(t.Context(), u))
			_, err := uuid.Parse(u.ID)
			require.NoError(t, err, "ID must be a UUID")
			assert.Equal(t, "alice@example.com", u.Email)
			assert.Equal(t, clk.Now(), u.CreatedAt)
			assert.Equal(t, clk.Now(), u.UpdatedAt)

			got, err := s.GetUser(t.Context(), u.ID)
			require.NoError(t, err)
			assert.Equal(t, u, got)
			got, err = s.GetUserByEmail(t.Context(), "ALICE@example.com")
			require.NoError(t, err)
			assert.Equal(t, u, got)
		}},
		{"TestUsers_CreateKeepsGivenID", func(t *testing.T, s *storage.Store, _ *clock) {
			u := &storage.User{ID: "0b5c0e57-5c3f-4c57-9b8e-6f1f7d1f0a11", Email: "id@example.com"}
			require.NoError(t, s.CreateUser(t.Context(), u))
			got, err := s.GetUser(t.Context(), "0b5c0e57-5c3f-4c57-9b8e-6f1f7d1f0a11")
			require.NoError(t, err)
			assert.Equal(t, "id@example.com", got.Email)
		}},
		{"TestUsers_DuplicateEmailInOtherCaseIsAlreadyExists", func(t *testing.T, s *storage.Store, _ *clock) {
			require.NoError(t, s.CreateUser(t.Context(), &storage.User{Email: "bob@example.com"}))
			err := s.CreateUser(t.Context(), &storage.User{Email: "BOB@Example.com"})
			assert.ErrorIs(t, err, storage.ErrAlreadyExists)
			err = s.CreateUser(t.Context(), &storage.User{Email: "bob@example.com"})
			assert.ErrorIs(t, err, storage.ErrAlreadyExists)
		}},
		{"TestUsers_DuplicateIDIsAlreadyExists", func(t *testing.T, s *storage.Store, _ *clock) {
			require.NoError(t, s.CreateUser(t.Context(), &storage.User{ID: "u1", Email: "a@example.com"}))
			err := s.CreateUser(t.Context(), &storage.User{ID: "u1", Email: "b@example.com"})
			assert.ErrorIs(t, err, storage.ErrAlreadyExists)
		}},
		{"TestUsers_GetMissingIsNotFound", func(t *testing.T, s *storage.Store, _ *clock) {
			_, err := s.GetUser(t.Context(), "no-such-user")
			requireNotFound(t, err)
			_, err = s.GetUserByEmail(t.Context(), "nobody@example.com")
			requireNotFound(t, err)
		}},
		{"TestUsers_ListOrderedByCreatedAt", func(t *testing.T, s *storage.Store, clk *clock) {
			base := clk.Now()
			// Created out of order, across a second boundary.
			for _, c := range []struct {
				email string
				at    time.Duration
			}{{"b@example.com", 100 * time.Microsecond}, {"a@example.com", 0}, {"c@example.com", 2 * time.Second}} {
				clk.Set(base.Add(c.at))
				require.NoError(t, s.CreateUser(t.Context(), &storage.User{Email: c.email}))
			}
			users, err := s.ListUsers(t.Context())
			require.NoError(t, err)
			var emails []string
			for _, u := range users {
				emails = append(emails, u.Email)
			}
			assert.Equal(t, []string{"a@example.com", "b@example.com", "c@example.com"}, emails)
		}},
		{"TestUsers_SetDisabled", func(t *testing.T, s *storage.Store, clk *clock) {
			u := &storage.User{Email: "carol@example.com"}
			require.NoError(t, s.CreateUser(t.Context(), u))
			clk.Add(time.Minute)
			require.NoError(t, s.SetUserDisabled(t.Context(), u.ID, true))
			got, err := s.GetUser(t.Context(), u.ID)
			require.NoError(t, err)
			assert.True(t, got.Disabled)
			assert.Equal(t, clk.Now(), got.UpdatedAt)
			assert.Equal(t, u.CreatedAt, got.CreatedAt)

			require.NoError(t, s.SetUserDisabled(t.Context(), u.ID, false))
			got, err = s.GetUser(t.Context(), u.ID)
			require.NoError(t, err)
			assert.False(t, got.Disabled)

			requireNotFound(t, s.SetUserDisabled(t.Context(), "no-such-user", true))
		}},
	}
}
