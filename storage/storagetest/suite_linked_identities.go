package storagetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otpstep/otpstep/storage"
)

func linkedIdentityTests() []conformanceTest {
	link := func(t *testing.T, s *storage.Store, userID, provider, subject string) *storage.LinkedIdentity {
		t.Helper()
		li := &storage.LinkedIdentity{UserID: userID, Provider: provider, Subject: subject, Email: subject + "@" + provider + ".example"}
		require.NoError(t, s.CreateLinkedIdentity(t.Context(), li))
		return li
	}
	return []conformanceTest{
		{"TestLinkedIdentities_CreateGetListHas", func(t *testing.T, s *storage.Store, clk *clock) {
			ctx := t.Context()
			u := newTestUser(t, s)
			zeta := link(t, s, u.ID, "zeta", "z-1")
			_, err := uuid.Parse(zeta.ID)
			require.NoError(t, err, "ID must be a UUID")
			assert.Equal(t, clk.Now(), zeta.CreatedAt)
			clk.Add(time.Second)
			alpha := link(t, s, u.ID, "alpha", "a-1")

			got, err := s.GetLinkedIdentityBySubject(ctx, "zeta", "z-1")
			require.NoError(t, err)
			assert.Equal(t, zeta, got)
			_, err = s.GetLinkedIdentityBySubject(ctx, "zeta", "a-1")
			requireNotFound(t, err)

			list, err := s.ListLinkedIdentities(ctx, u.ID)
			require.NoError(t, err)
			assert.Equal(t, []storage.LinkedIdentity{*alpha, *zeta}, list, "ordered by provider")
			list, err = s.ListLinkedIdentities(ctx, "nobody")
			require.NoError(t, err)
			assert.Empty(t, list)

			for _, tc := range []struct {
				user      string
				providers []string
				want      bool
			}{
				{u.ID, nil, true},
				{u.ID, []string{}, true},
				{u.ID, []string{"alpha"}, true},
				{u.ID, []string{"other", "zeta"}, true},
				{u.ID, []string{"other"}, false},
				{u.ID, []string{"other", "more", "Alpha"}, false},
				{"nobody", nil, false},
				{"nobody", []string{"alpha"}, false},
			} {
				has, err := s.HasLinkedIdentity(ctx, tc.user, tc.providers)
				require.NoError(t, err)
				assert.Equal(t, tc.want, has, "%s %v", tc.user, tc.providers)
			}
		}},
		{"TestLinkedIdentities_CreateDuplicatesAreAlreadyExists", func(t *testing.T, s *storage.Store, _ *clock) {
			ctx := t.Context()
			alice, bob := newTestUser(t, s), newTestUser(t, s)
			link(t, s, alice.ID, "partner", "p-1")
			err := s.CreateLinkedIdentity(ctx, &storage.LinkedIdentity{UserID: bob.ID, Provider: "partner", Subject: "p-1"})
			assert.ErrorIs(t, err, storage.ErrAlreadyExists, "a subject belongs to one user")
			err = s.CreateLinkedIdentity(ctx, &storage.LinkedIdentity{UserID: alice.ID, Provider: "partner", Subject: "p-2"})
			assert.ErrorIs(t, err, storage.ErrAlreadyExists, "one link per user and provider")
			err = s.CreateLinkedIdentity(ctx, &storage.LinkedIdentity{UserID: "no-such-user", Provider: "partner", Subject: "p-3"})
			assert.ErrorIs(t, err, storage.ErrNotFound)
			link(t, s, bob.ID, "other", "p-1") // the same subject at another provider is another account
		}},
		{"TestLinkedIdentities_UpsertCreatesIsIdempotentAndReplaces", func(t *testing.T, s *storage.Store, clk *clock) {
			ctx := t.Context()
			u := newTestUser(t, s)
			li := &storage.LinkedIdentity{UserID: u.ID, Provider: "partner", Subject: "p-1", Email: "a@partner.example"}
			require.NoError(t, s.UpsertLinkedIdentity(ctx, li))
			_, err := uuid.Parse(li.ID)
			require.NoError(t, err, "ID must be a UUID")
			assert.Equal(t, clk.Now(), li.CreatedAt)
			first := *li

			clk.Add(time.Minute)
			again := &storage.LinkedIdentity{UserID: u.ID, Provider: "partner", Subject: "p-1", Email: "changed@partner.example"}
			require.NoError(t, s.UpsertLinkedIdentity(ctx, again))
			assert.Equal(t, first, *again, "the same link again changes nothing")

			clk.Add(time.Minute)
			moved := &storage.LinkedIdentity{UserID: u.ID, Provider: "partner", Subject: "p-2", Email: "b@partner.example"}
			require.NoError(t, s.UpsertLinkedIdentity(ctx, moved))
			assert.Equal(t, storage.LinkedIdentity{ID: first.ID, UserID: u.ID, Provider: "partner", Subject: "p-2",
				Email: "b@partner.example", CreatedAt: clk.Now()}, *moved, "the link is replaced in place")
			_, err = s.GetLinkedIdentityBySubject(ctx, "partner", "p-1")
			requireNotFound(t, err)
			list, err := s.ListLinkedIdentities(ctx, u.ID)
			require.NoError(t, err)
			assert.Equal(t, []storage.LinkedIdentity{*moved}, list)

			err = s.UpsertLinkedIdentity(ctx, &storage.LinkedIdentity{UserID: "no-such-user", Provider: "partner", Subject: "p-9"})
			assert.ErrorIs(t, err, storage.ErrNotFound)
		}},
		{"TestLinkedIdentities_UpsertOfAnotherUsersSubjectChangesNothing", func(t *testing.T, s *storage.Store, _ *clock) {
			ctx := t.Context()
			alice, bob := newTestUser(t, s), newTestUser(t, s)
			aliceLink := link(t, s, alice.ID, "partner", "p-1")
			bobLink := link(t, s, bob.ID, "partner", "p-2")
			err := s.UpsertLinkedIdentity(ctx, &storage.LinkedIdentity{UserID: bob.ID, Provider: "partner", Subject: "p-1"})
			assert.ErrorIs(t, err, storage.ErrAlreadyExists)
			for _, want := range []*storage.LinkedIdentity{aliceLink, bobLink} {
				got, err := s.GetLinkedIdentityBySubject(ctx, want.Provider, want.Subject)
				require.NoError(t, err)
				assert.Equal(t, want, got)
			}
		}},
		{"TestLinkedIdentities_UpsertRollsBackWithTheCallersTransaction", func(t *testing.T, s *storage.Store, _ *clock) {
			u := newTestUser(t, s)
			errBoom := errors.New("boom")
			err := s.InTx(t.Context(), func(ctx context.Context) error {
				if err := s.UpsertLinkedIdentity(ctx, &storage.LinkedIdentity{UserID: u.ID, Provider: "partner", Subject: "p-1"}); err != nil {
					return err
				}
				return errBoom
			})
			require.ErrorIs(t, err, errBoom)
			has, err := s.HasLinkedIdentity(t.Context(), u.ID, nil)
			require.NoError(t, err)
			assert.False(t, has)
		}},
		{"TestLinkedIdentities_ConcurrentUpsertsOfOneSubjectHaveOneOwner", func(t *testing.T, s *storage.Store, _ *clock) {
			users := make([]*storage.User, racers)
			for i := range users {
				users[i] = newTestUser(t, s)
			}
			errs := race(func(i int) error {
				return s.UpsertLinkedIdentity(t.Context(), &storage.LinkedIdentity{UserID: users[i].ID, Provider: "partner", Subject: "p-1"})
			})
			owners := 0
			for _, err := range errs {
				if err == nil {
					owners++
					continue
				}
				assert.ErrorIs(t, err, storage.ErrAlreadyExists)
			}
			assert.Equal(t, 1, owners)
			got, err := s.GetLinkedIdentityBySubject(t.Context(), "partner", "p-1")
			require.NoError(t, err)
			for i, u := range users {
				if u.ID == got.UserID {
					assert.NoError(t, errs[i], "the owner is the one that succeeded")
				}
			}

			// The owner's own concurrent upserts of the same link all succeed.
			owner := got.UserID
			errs = race(func(int) error {
				return s.UpsertLinkedIdentity(t.Context(), &storage.LinkedIdentity{UserID: owner, Provider: "partner", Subject: "p-1"})
			})
			for _, err := range errs {
				assert.NoError(t, err)
			}
		}},
		{"TestLinkedIdentities_Delete", func(t *testing.T, s *storage.Store, _ *clock) {
			ctx := t.Context()
			u := newTestUser(t, s)
			link(t, s, u.ID, "partner", "p-1")
			link(t, s, u.ID, "other", "o-1")
			require.NoError(t, s.DeleteLinkedIdentity(ctx, u.ID, "partner"))
			requireNotFound(t, s.DeleteLinkedIdentity(ctx, u.ID, "partner"))
			has, err := s.HasLinkedIdentity(ctx, u.ID, []string{"partner"})
			require.NoError(t, err)
			assert.False(t, has)
			has, err = s.HasLinkedIdentity(ctx, u.ID, nil)
			require.NoError(t, err)
			assert.True(t, has)
			// The subject is free again, for anyone.
			link(t, s, newTestUser(t, s).ID, "partner", "p-1")
		}},
	}
}
