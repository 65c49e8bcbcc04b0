package storagetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/ory/fosite"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otpstep/otpstep/storage"
)

// newTestUser stores a user with a random email.
func newTestUser(t *testing.T, s *storage.Store) *storage.User {
	t.Helper()
	u := &storage.User{Email: uuid.NewString() + "@example.com"}
	require.NoError(t, s.CreateUser(t.Context(), u))
	return u
}

// newTestOTPChallenge stores a challenge of the scope, valid for ten minutes
// with three attempts.
func newTestOTPChallenge(t *testing.T, s *storage.Store, clk *clock, kind, userID, sessionID string) *storage.OTPChallenge {
	t.Helper()
	ch := &storage.OTPChallenge{
		Kind: kind, UserID: userID, SessionID: sessionID, ClientID: "rp",
		CodeHash: []byte{0x01, 0x02, 0xfe, 0xff}, MaxAttempts: 3,
		ExpiresAt: clk.Now().Add(10 * time.Minute),
	}
	require.NoError(t, s.CreateOTPChallenge(t.Context(), ch))
	return ch
}

// requireNotLive asserts the scope has no live challenge.
func requireNotLive(t *testing.T, s *storage.Store, kind, userID, sessionID string) {
	t.Helper()
	_, err := s.LiveOTPChallenge(t.Context(), kind, userID, sessionID)
	requireNotFound(t, err)
}

func otpChallengeTests() []conformanceTest {
	return []conformanceTest{
		{"TestOTPChallenges_CreateFillsIDAndCreatedAtAndGetsLive", func(t *testing.T, s *storage.Store, clk *clock) {
			ls := newTestLoginSession(t, s, clk)
			ch := newTestOTPChallenge(t, s, clk, "login", ls.UserID, ls.ID)
			_, err := uuid.Parse(ch.ID)
			require.NoError(t, err, "ID must be a UUID")
			assert.Equal(t, clk.Now(), ch.CreatedAt)

			got, err := s.LiveOTPChallenge(t.Context(), "login", ls.UserID, ls.ID)
			require.NoError(t, err)
			assert.Equal(t, &storage.OTPChallenge{
				ID: ch.ID, Kind: "login", UserID: ls.UserID, SessionID: ls.ID, ClientID: "rp",
				CodeHash: []byte{0x01, 0x02, 0xfe, 0xff}, MaxAttempts: 3,
				ExpiresAt: clk.Now().Add(10 * time.Minute), CreatedAt: clk.Now(),
			}, got)

			acct := &storage.OTPChallenge{ID: "acct-1", Kind: "account", UserID: ls.UserID,
				CodeHash: []byte("h"), MaxAttempts: 5, ExpiresAt: clk.Now().Add(time.Minute),
				CreatedAt: clk.Now().Add(-time.Second)}
			require.NoError(t, s.CreateOTPChallenge(t.Context(), acct))
			got, err = s.LiveOTPChallenge(t.Context(), "account", ls.UserID, "")
			require.NoError(t, err)
			assert.Equal(t, acct, got, "a given ID and CreatedAt are kept")
			got, err = s.LiveOTPChallenge(t.Context(), "login", ls.UserID, ls.ID)
			require.NoError(t, err)
			assert.Equal(t, ch.ID, got.ID, "scopes are apart")
		}},
		{"TestOTPChallenges_LiveIsNotFoundWhenNone", func(t *testing.T, s *storage.Store, _ *clock) {
			requireNotLive(t, s, "login", "no-user", "no-session")
			requireNotLive(t, s, "account", "no-user", "")
		}},
		{"TestOTPChallenges_ExpiredStaysLive", func(t *testing.T, s *storage.Store, clk *clock) {
			u := newTestUser(t, s)
			ch := newTestOTPChallenge(t, s, clk, "account", u.ID, "")
			clk.Add(time.Hour)
			got, err := s.LiveOTPChallenge(t.Context(), "account", u.ID, "")
			require.NoError(t, err, "expiry is the caller's check")
			assert.Equal(t, ch.ID, got.ID)
			assert.True(t, clk.Now().After(got.ExpiresAt))
		}},
		{"TestOTPChallenges_CreateBurnsThePreviousLiveOneOfItsScopeOnly", func(t *testing.T, s *storage.Store, clk *clock) {
			ctx := t.Context()
			ls := newTestLoginSession(t, s, clk)
			other := newTestLoginSession(t, s, clk)
			first := newTestOTPChallenge(t, s, clk, "login", ls.UserID, ls.ID)
			acct := newTestOTPChallenge(t, s, clk, "account", ls.UserID, "")
			otherCh := newTestOTPChallenge(t, s, clk, "login", other.UserID, other.ID)

			clk.Add(30 * time.Second)
			second := newTestOTPChallenge(t, s, clk, "login", ls.UserID, ls.ID)
			got, err := s.LiveOTPChallenge(ctx, "login", ls.UserID, ls.ID)
			require.NoError(t, err)
			assert.Equal(t, second.ID, got.ID)

			for _, consume := range []bool{false, true} {
				_, ok, err := s.TryOTPChallenge(ctx, first.ID, consume)
				require.NoError(t, err)
				assert.False(t, ok, "the replaced challenge is burned")
			}

			for _, c := range []*storage.OTPChallenge{acct, otherCh} {
				got, err := s.LiveOTPChallenge(ctx, c.Kind, c.UserID, c.SessionID)
				require.NoError(t, err)
				assert.Equal(t, c.ID, got.ID, "other scopes keep their challenge")
			}
		}},
		{"TestOTPChallenges_CreateErrorsLeaveThePreviousLive", func(t *testing.T, s *storage.Store, clk *clock) {
			u := newTestUser(t, s)
			ch := newTestOTPChallenge(t, s, clk, "account", u.ID, "")
			dup := &storage.OTPChallenge{ID: ch.ID, Kind: "account", UserID: u.ID, CodeHash: []byte("x"),
				MaxAttempts: 3, ExpiresAt: clk.Now().Add(time.Minute)}
			assert.ErrorIs(t, s.CreateOTPChallenge(t.Context(), dup), storage.ErrAlreadyExists)
			got, err := s.LiveOTPChallenge(t.Context(), "account", u.ID, "")
			require.NoError(t, err)
			assert.Equal(t, ch.ID, got.ID, "the burn is rolled back with the failed insert")

			unknown := &storage.OTPChallenge{Kind: "account", UserID: "no-such-user", CodeHash: []byte("x"),
				MaxAttempts: 3, ExpiresAt: clk.Now().Add(time.Minute)}
			assert.ErrorIs(t, s.CreateOTPChallenge(t.Context(), unknown), storage.ErrNotFound)
		}},
		{"TestOTPChallenges_ConcurrentCreatePairsBothSucceed", func(t *testing.T, s *storage.Store, clk *clock) {
			ls := newTestLoginSession(t, s, clk)
			for round := range 10 {
				var (
					wg    sync.WaitGroup
					start = make(chan struct{})
					ids   [2]string
					errs  [2]error
				)
				for i := range 2 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						ch := &storage.OTPChallenge{Kind: "login", UserID: ls.UserID, SessionID: ls.ID,
							CodeHash: []byte{byte(i)}, MaxAttempts: 3, ExpiresAt: clk.Now().Add(time.Minute)}
						<-start
						errs[i] = s.CreateOTPChallenge(t.Context(), ch)
						ids[i] = ch.ID
					}()
				}
				close(start)
				wg.Wait()
				require.NoError(t, errs[0], "round %d", round)
				require.NoError(t, errs[1], "round %d", round)
				got, err := s.LiveOTPChallenge(t.Context(), "login", ls.UserID, ls.ID)
				require.NoError(t, err)
				assert.Contains(t, ids[:], got.ID, "the later create is live")
			}
		}},
		{"TestOTPChallenges_ConcurrentCreatesInTransactionsLeaveExactlyOneLive", func(t *testing.T, s *storage.Store, clk *clock) {
			// Each racer writes its challenge and its mail in one transaction, as
			// the provider does; racers may only fail with a retryable error.
			ls := newTestLoginSession(t, s, clk)
			ids := make([]string, racers)
			errs := race(func(i int) error {
				ch := &storage.OTPChallenge{ID: uuid.NewString(), Kind: "login", UserID: ls.UserID, SessionID: ls.ID,
					CodeHash: []byte{byte(i)}, MaxAttempts: 3, ExpiresAt: clk.Now().Add(time.Minute)}
				ids[i] = ch.ID
				return s.InTx(t.Context(), func(ctx context.Context) error {
					if err := s.CreateOTPChallenge(ctx, ch); err != nil {
						return err
					}
					return s.EnqueueOutbox(ctx, &storage.OutboxMessage{Sealed: []byte{byte(i)}})
				})
			})
			created := 0
			for _, err := range errs {
				if err != nil {
					assert.ErrorIs(t, err, fosite.ErrSerializationFailure)
					continue
				}
				created++
			}
			require.Positive(t, created)
			pending, _, err := s.OutboxBacklog(t.Context())
			require.NoError(t, err)
			assert.Equal(t, created, pending, "a mail per committed challenge")

			live, err := s.LiveOTPChallenge(t.Context(), "login", ls.UserID, ls.ID)
			require.NoError(t, err)
			winners := 0
			for i, id := range ids {
				_, won, err := s.TryOTPChallenge(t.Context(), id, true)
				require.NoError(t, err)
				if won {
					winners++
					assert.Equal(t, live.ID, id)
					assert.NoError(t, errs[i])
				}
			}
			assert.Equal(t, 1, winners, "exactly one challenge stayed live")
		}},
		{"TestOTPChallenges_BurnOneAndBurnScope", func(t *testing.T, s *storage.Store, clk *clock) {
			ctx := t.Context()
			ls := newTestLoginSession(t, s, clk)
			ch := newTestOTPChallenge(t, s, clk, "login", ls.UserID, ls.ID)
			require.NoError(t, s.BurnOTPChallenge(ctx, ch.ID))
			requireNotLive(t, s, "login", ls.UserID, ls.ID)
			_, won, err := s.TryOTPChallenge(ctx, ch.ID, true)
			require.NoError(t, err)
			assert.False(t, won, "a burned challenge cannot be consumed")
			assert.NoError(t, s.BurnOTPChallenge(ctx, ch.ID), "burning twice is not an error")
			assert.NoError(t, s.BurnOTPChallenge(ctx, "missing"))

			login := newTestOTPChallenge(t, s, clk, "login", ls.UserID, ls.ID)
			acct := newTestOTPChallenge(t, s, clk, "account", ls.UserID, "")
			require.NoError(t, s.BurnOTPChallenges(ctx, "login", ls.UserID, ls.ID))
			requireNotLive(t, s, "login", ls.UserID, ls.ID)
			got, err := s.LiveOTPChallenge(ctx, "account", ls.UserID, "")
			require.NoError(t, err)
			assert.Equal(t, acct.ID, got.ID, "only the named scope is burned")
			_, ok, err := s.TryOTPChallenge(ctx, login.ID, false)
			require.NoError(t, err)
			assert.False(t, ok)
			assert.NoError(t, s.BurnOTPChallenges(ctx, "login", ls.UserID, ls.ID), "nothing live is not an error")
		}},
		{"TestPurgeExpired_OTPChallengesAfterADay", func(t *testing.T, s *storage.Store, clk *clock) {
			ctx := t.Context()
			u := newTestUser(t, s)
			t0 := clk.Now()
			consumed := newTestOTPChallenge(t, s, clk, "login", u.ID, "consumed")
			_, won, err := s.TryOTPChallenge(ctx, consumed.ID, true)
			require.NoError(t, err)
			require.True(t, won)
			newTestOTPChallenge(t, s, clk, "login", u.ID, "expired") // stays live, expires t0+10m
			// Used at t0 but valid until t0+72h: kept a day past its expiry,
			// not a day past its use.
			longLived := &storage.OTPChallenge{Kind: "login", UserID: u.ID, SessionID: "long-lived", CodeHash: []byte("h"),
				MaxAttempts: 3, ExpiresAt: t0.Add(72 * time.Hour)}
			require.NoError(t, s.CreateOTPChallenge(ctx, longLived))
			_, won, err = s.TryOTPChallenge(ctx, longLived.ID, true)
			require.NoError(t, err)
			require.True(t, won)
			newTestOTPChallenge(t, s, clk, "login", u.ID, "replaced")
			kept := &storage.OTPChallenge{Kind: "login", UserID: u.ID, SessionID: "replaced", CodeHash: []byte("h"),
				MaxAttempts: 3, ExpiresAt: t0.Add(72 * time.Hour)} // burns the first of "replaced" at t0
			require.NoError(t, s.CreateOTPChallenge(ctx, kept))

			clk.Set(t0.Add(24*time.Hour + 10*time.Minute))
			recent := newTestOTPChallenge(t, s, clk, "account", u.ID, "")
			clk.Add(11 * time.Minute) // recent expired a minute ago

			n, err := s.PurgeExpired(ctx, clk.Now())
			require.NoError(t, err)
			assert.Equal(t, int64(3), n, "consumed, expired and burned, each expired more than a day ago; not the long-lived one used a day ago")
			requireNotLive(t, s, "login", u.ID, "expired")
			got, err := s.LiveOTPChallenge(ctx, "login", u.ID, "replaced")
			require.NoError(t, err)
			assert.Equal(t, kept.ID, got.ID)
			got, err = s.LiveOTPChallenge(ctx, "account", u.ID, "")
			require.NoError(t, err, "expired less than a day ago: kept")
			assert.Equal(t, recent.ID, got.ID)
		}},
	}
}
