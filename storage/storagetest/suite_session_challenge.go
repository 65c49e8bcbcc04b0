package storagetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otpstep/otpstep/storage"
)

// newSessionChallenge is a NewSessionChallenge for a new session of user,
// limited per session (one send) and counted per user as the session API
// is; tests that limit the user's sends set Hits[1].Max.
func newSessionChallenge(clk *clock, userID string) *storage.NewSessionChallenge {
	sid := uuid.NewString()
	return &storage.NewSessionChallenge{
		Session: &storage.LoginSession{ID: sid, UserID: userID, AMR: []string{"pwd"},
			AuthTime: clk.Now(), ExpiresAt: clk.Now().Add(time.Hour)},
		NewChallenge: storage.NewChallenge{
			Hits: []storage.RateHit{{Key: "resend:" + sid, Window: 30 * time.Second, Max: 1}, {Key: "sends:" + userID, Window: time.Hour}},
			Challenge: &storage.OTPChallenge{Kind: "login", UserID: userID, SessionID: sid, ClientID: "rp",
				CodeHash: []byte{1, 2, 3}, MaxAttempts: 5, ExpiresAt: clk.Now().Add(5 * time.Minute)},
			Mail: &storage.OutboxMessage{Sealed: []byte("sealed")},
			Events: []*storage.AuditEvent{
				{Type: "session.created", UserID: userID, SessionID: sid},
				{Type: "otp.issued", UserID: userID, SessionID: sid, Detail: map[string]any{"in_response": true}},
			},
		},
	}
}

// sessionChallengeStored reports what of c is in the store: the session, the
// live challenge, the mail (the outbox count), the events of c's user.
func sessionChallengeStored(t *testing.T, s *storage.Store, c *storage.NewSessionChallenge) (session, challenge bool, mails, events int) {
	t.Helper()
	ctx := t.Context()
	_, err := s.GetLoginSession(ctx, c.Session.ID)
	session = err == nil
	ch, err := s.LiveOTPChallenge(ctx, "login", c.Session.UserID, c.Session.ID)
	challenge = err == nil && ch.ID == c.Challenge.ID
	mails, _, err = s.OutboxBacklog(ctx)
	require.NoError(t, err)
	list, err := s.ListAuditEvents(ctx, c.Session.UserID, 0)
	require.NoError(t, err)
	return session, challenge, mails, len(list)
}

// sessionChallengeTests are CreateSessionChallenge (the session API's new
// session in one transaction; pipelined on PostgreSQL).
func sessionChallengeTests() []conformanceTest {
	return []conformanceTest{
		{"TestSessionChallenge_StoresEverything", func(t *testing.T, s *storage.Store, clk *clock) {
			u := newTestUser(t, s)
			c := newSessionChallenge(clk, u.ID)
			require.NoError(t, s.CreateSessionChallenge(t.Context(), c))
			session, challenge, mails, events := sessionChallengeStored(t, s, c)
			assert.True(t, session)
			assert.True(t, challenge)
			assert.Equal(t, 1, mails)
			assert.Equal(t, 2, events)
			assert.Equal(t, []int{1, 1}, peekHits(t, s, c.Hits))

			// Defaults are written back, as the single-row methods do.
			_, err := uuid.Parse(c.Challenge.ID)
			require.NoError(t, err)
			_, err = uuid.Parse(c.Mail.ID)
			require.NoError(t, err)
			assert.Equal(t, clk.Now(), c.Session.CreatedAt)
			assert.Equal(t, clk.Now(), c.Challenge.CreatedAt)
			assert.Equal(t, clk.Now(), c.Mail.AvailableAt)
			assert.Equal(t, clk.Now(), c.Events[0].At)
			ls, err := s.GetLoginSession(t.Context(), c.Session.ID)
			require.NoError(t, err)
			assert.Equal(t, []string{"pwd"}, ls.AMR)
			ch, err := s.LiveOTPChallenge(t.Context(), "login", u.ID, c.Session.ID)
			require.NoError(t, err)
			assert.Equal(t, []byte{1, 2, 3}, ch.CodeHash)
			assert.Equal(t, c.Challenge.ExpiresAt, ch.ExpiresAt)
			msgs, err := s.ClaimOutbox(t.Context(), 10, time.Minute)
			require.NoError(t, err)
			require.Len(t, msgs, 1)
			assert.Equal(t, []byte("sealed"), msgs[0].Sealed)

			// The per-user key counts on for the next session.
			next := newSessionChallenge(clk, u.ID)
			require.NoError(t, s.CreateSessionChallenge(t.Context(), next))
			assert.Equal(t, []int{1, 2}, peekHits(t, s, next.Hits))
		}},
		{"TestSessionChallenge_PastItsMaxStoresAndCountsNothing", func(t *testing.T, s *storage.Store, clk *clock) {
			u := newTestUser(t, s)
			first := newSessionChallenge(clk, u.ID)
			first.Hits[1].Max = 1
			require.NoError(t, s.CreateSessionChallenge(t.Context(), first))

			c := newSessionChallenge(clk, u.ID)
			c.Hits[1].Max = 1
			err := s.CreateSessionChallenge(t.Context(), c)
			var limited *storage.RateLimitedError
			require.ErrorAs(t, err, &limited)
			assert.Equal(t, 1, limited.Index, "the hit past its Max")
			assert.Equal(t, []storage.RateCount{{Count: 1, ResetAt: clk.Now().Add(30 * time.Second)},
				{Count: 2, ResetAt: clk.Now().Add(time.Hour)}}, limited.Counts, "every hit's count, the refused one past its Max")
			session, challenge, mails, events := sessionChallengeStored(t, s, c)
			assert.False(t, session)
			assert.False(t, challenge)
			assert.Equal(t, 1, mails, "the first session's mail only")
			assert.Equal(t, 2, events, "the first session's events only")
			assert.Equal(t, []int{0, 1}, peekHits(t, s, c.Hits), "the refused request counted nothing")

			// The id is still free.
			c.Hits[1].Max = 2
			require.NoError(t, s.CreateSessionChallenge(t.Context(), newSessionChallengeFor(c)))
		}},
		{"TestIssueChallenge_PastItsMaxIsRateLimitedAndStoresNothing", func(t *testing.T, s *storage.Store, clk *clock) {
			// IssueChallenge is the same statements for a session that
			// exists (a resend): the first code is stored, the second is
			// past the per-session Max, refused, and leaves the first live.
			ls := newTestLoginSession(t, s, clk)
			issue := func() *storage.NewChallenge {
				c := newSessionChallenge(clk, ls.UserID).NewChallenge
				c.Hits[0].Key = "resend:" + ls.ID
				c.Challenge.SessionID = ls.ID
				return &c
			}
			first := issue()
			require.NoError(t, s.IssueChallenge(t.Context(), first))
			second := issue()
			err := s.IssueChallenge(t.Context(), second)
			var limited *storage.RateLimitedError
			require.ErrorAs(t, err, &limited)
			assert.Equal(t, 0, limited.Index, "the per-session hit is past its Max")
			assert.Equal(t, 2, limited.Counts[0].Count)
			assert.Equal(t, []int{1, 1}, peekHits(t, s, second.Hits), "the refused request's hits rolled back")
			ch, err := s.LiveOTPChallenge(t.Context(), "login", ls.UserID, ls.ID)
			require.NoError(t, err)
			assert.Equal(t, first.Challenge.ID, ch.ID, "the first code stays live")
			mails, _, err := s.OutboxBacklog(t.Context())
			require.NoError(t, err)
			assert.Equal(t, 1, mails)

			// Allowed, a new code burns the live one.
			third := issue()
			third.Hits[0].Max = 3
			require.NoError(t, s.IssueChallenge(t.Context(), third))
			ch, err = s.LiveOTPChallenge(t.Context(), "login", ls.UserID, ls.ID)
			require.NoError(t, err)
			assert.Equal(t, third.Challenge.ID, ch.ID)
			require.Error(t, s.IssueChallenge(t.Context(), &storage.NewChallenge{Challenge: third.Challenge}), "no hits")
		}},
		{"TestSessionChallenge_AFailureAfterTheCountsStoresNothing", func(t *testing.T, s *storage.Store, clk *clock) {
			// The mail's id is taken: the statements before it (session,
			// counters, challenge) are rolled back with it, and the store
			// (its connection) goes on working.
			u := newTestUser(t, s)
			taken := &storage.OutboxMessage{Sealed: []byte("x")}
			require.NoError(t, s.EnqueueOutbox(t.Context(), taken))
			c := newSessionChallenge(clk, u.ID)
			c.Mail.ID = taken.ID
			err := s.CreateSessionChallenge(t.Context(), c)
			require.ErrorIs(t, err, storage.ErrAlreadyExists)
			session, challenge, mails, events := sessionChallengeStored(t, s, c)
			assert.False(t, session)
			assert.False(t, challenge)
			assert.Equal(t, 1, mails)
			assert.Zero(t, events)
			assert.Equal(t, []int{0, 0}, peekHits(t, s, c.Hits))
			for range 3 {
				require.NoError(t, s.CreateSessionChallenge(t.Context(), newSessionChallenge(clk, u.ID)))
			}
		}},
		{"TestSessionChallenge_TakenSessionIsAlreadyExistsAndStoresNothing", func(t *testing.T, s *storage.Store, clk *clock) {
			ls := newTestLoginSession(t, s, clk)
			c := newSessionChallenge(clk, ls.UserID)
			c.Session.ID, c.Challenge.SessionID = ls.ID, ls.ID
			err := s.CreateSessionChallenge(t.Context(), c)
			require.ErrorIs(t, err, storage.ErrAlreadyExists)
			_, challenge, mails, events := sessionChallengeStored(t, s, c)
			assert.False(t, challenge)
			assert.Zero(t, mails)
			assert.Zero(t, events)
			n, _, err := s.PeekRateCounter(t.Context(), c.Hits[1].Key, time.Hour)
			require.NoError(t, err)
			assert.Zero(t, n)
		}},
		{"TestSessionChallenge_UnknownUserIsNotFound", func(t *testing.T, s *storage.Store, clk *clock) {
			c := newSessionChallenge(clk, "no-such-user")
			err := s.CreateSessionChallenge(t.Context(), c)
			requireNotFound(t, err)
			mails, _, err := s.OutboxBacklog(t.Context())
			require.NoError(t, err)
			assert.Zero(t, mails)
		}},
		{"TestSessionChallenge_InsideACallersTransaction", func(t *testing.T, s *storage.Store, clk *clock) {
			u := newTestUser(t, s)
			c := newSessionChallenge(clk, u.ID)
			err := s.InTx(t.Context(), func(ctx context.Context) error {
				require.NoError(t, s.CreateSessionChallenge(ctx, c))
				_, err := s.GetLoginSession(ctx, c.Session.ID)
				require.NoError(t, err, "the caller's transaction sees it")
				return errors.New("rolled back by the caller")
			})
			require.Error(t, err)
			session, _, mails, _ := sessionChallengeStored(t, s, c)
			assert.False(t, session)
			assert.Zero(t, mails)
		}},
		{"TestSessionChallenge_ConcurrentRequestsShareTheUsersLimit", func(t *testing.T, s *storage.Store, clk *clock) {
			// 12 new sessions of one user at once, at most 3 sends allowed:
			// exactly 3 are stored, and the counter says 3.
			u := newTestUser(t, s)
			const callers, limit = 12, 3
			var (
				wg     sync.WaitGroup
				mu     sync.Mutex
				stored int
			)
			for range callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c := newSessionChallenge(clk, u.ID)
					c.Hits[1].Max = limit
					err := s.CreateSessionChallenge(t.Context(), c)
					if err == nil {
						mu.Lock()
						stored++
						mu.Unlock()
						return
					}
					var limited *storage.RateLimitedError
					if assert.ErrorAs(t, err, &limited) {
						assert.Equal(t, 1, limited.Index)
						assert.Equal(t, limit+1, limited.Counts[1].Count)
					}
				}()
			}
			wg.Wait()
			assert.Equal(t, limit, stored)
			n, _, err := s.PeekRateCounter(t.Context(), "sends:"+u.ID, time.Hour)
			require.NoError(t, err)
			assert.Equal(t, limit, n, "refused requests counted nothing")
			mails, _, err := s.OutboxBacklog(t.Context())
			require.NoError(t, err)
			assert.Equal(t, limit, mails)
		}},
		{"TestSessionChallenge_RefusesAChallengeOfAnotherSession", func(t *testing.T, s *storage.Store, clk *clock) {
			u := newTestUser(t, s)
			c := newSessionChallenge(clk, u.ID)
			c.Challenge.SessionID = "other"
			require.Error(t, s.CreateSessionChallenge(t.Context(), c))
			c = newSessionChallenge(clk, u.ID)
			c.Hits = nil
			require.Error(t, s.CreateSessionChallenge(t.Context(), c))
			session, _, _, _ := sessionChallengeStored(t, s, c)
			assert.False(t, session)
		}},
	}
}

// peekHits is the count of each hit's key in its window now.
func peekHits(t *testing.T, s *storage.Store, hits []storage.RateHit) []int {
	t.Helper()
	out := make([]int, len(hits))
	for i, h := range hits {
		n, _, err := s.PeekRateCounter(t.Context(), h.Key, h.Window)
		require.NoError(t, err)
		out[i] = n
	}
	return out
}

// newSessionChallengeFor is c again with fresh IDs for what was stored (the
// same session ID and keys).
func newSessionChallengeFor(c *storage.NewSessionChallenge) *storage.NewSessionChallenge {
	again := *c
	ch, mail := *c.Challenge, *c.Mail
	ch.ID, mail.ID = "", ""
	again.Challenge, again.Mail = &ch, &mail
	again.Events = []*storage.AuditEvent{{Type: fmt.Sprintf("again:%s", c.Session.ID), UserID: c.Session.UserID}}
	return &again
}
