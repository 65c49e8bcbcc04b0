package storagetest

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otpstep/otpstep/storage"
)

// userPINTests: a user's PIN hash and a login session's upstream identity
// (issue 14).
func userPINTests() []conformanceTest {
	return []conformanceTest{
		{"TestUserPINs_SetReplaceAndOnePerUser", func(t *testing.T, s *storage.Store, _ *clock) {
			ctx := t.Context()
			u := newTestUser(t, s)
			_, err := s.UserPINHash(ctx, u.ID)
			requireNotFound(t, err)
			require.NoError(t, s.SetUserPIN(ctx, u.ID, "$argon2id$first"))
			require.NoError(t, s.SetUserPIN(ctx, u.ID, "$argon2id$second"))
			got, err := s.UserPINHash(ctx, u.ID)
			require.NoError(t, err)
			assert.Equal(t, "$argon2id$second", got)
			requireNotFound(t, s.SetUserPIN(ctx, "no-such-user", "$argon2id$x"))
			other := newTestUser(t, s)
			_, err = s.UserPINHash(ctx, other.ID)
			requireNotFound(t, err)
		}},
		{"TestSessionUpstreams_SetGetAndGoneWithTheSession", func(t *testing.T, s *storage.Store, clk *clock) {
			ctx := t.Context()
			ls := newTestLoginSession(t, s, clk)
			_, err := s.GetSessionUpstream(ctx, ls.ID)
			requireNotFound(t, err)
			require.NoError(t, s.SetSessionUpstream(ctx, &storage.SessionUpstream{SessionID: ls.ID, Provider: "partner", Subject: "sub-1"}))
			require.NoError(t, s.SetSessionUpstream(ctx, &storage.SessionUpstream{SessionID: ls.ID, Provider: "partner", Subject: "sub-2", Email: "a@partner.example"}))
			got, err := s.GetSessionUpstream(ctx, ls.ID)
			require.NoError(t, err)
			assert.Equal(t, &storage.SessionUpstream{SessionID: ls.ID, Provider: "partner", Subject: "sub-2", Email: "a@partner.example"}, got)
			requireNotFound(t, s.SetSessionUpstream(ctx, &storage.SessionUpstream{SessionID: "no-such-session", Provider: "p", Subject: "s"}))
			require.NoError(t, s.DeleteLoginSession(ctx, ls.ID))
			_, err = s.GetSessionUpstream(ctx, ls.ID)
			requireNotFound(t, err)
		}},
	}
}
