package storagetest

import (
	"context"
	"errors"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otpstep/otpstep/storage"
)

// The statements of one OTP verification: TryOTPChallenge, PassLoginSession,
// CheckRateCounter and CountRateCounterHit.

// errRollback makes InTx roll back in a test.
var errRollback = errors.New("roll back")

func otpVerifyTests() []conformanceTest {
	return []conformanceTest{
		{"TestOTPChallenges_TrySpendsAnAttemptAndConsumesOnlyWhenAsked", func(t *testing.T, s *storage.Store, clk *clock) {
			ctx := t.Context()
			ls := newTestLoginSession(t, s, clk)
			ch := newTestOTPChallenge(t, s, clk, "login", ls.UserID, ls.ID)
			for want := 1; want <= 2; want++ {
				n, ok, err := s.TryOTPChallenge(ctx, ch.ID, false)
				require.NoError(t, err)
				assert.True(t, ok)
				assert.Equal(t, want, n)
			}
			got, err := s.LiveOTPChallenge(ctx, "login", ls.UserID, ls.ID)
			require.NoError(t, err, "a try that does not consume leaves the challenge live")
			assert.Equal(t, 2, got.Attempts)

			n, ok, err := s.TryOTPChallenge(ctx, ch.ID, true)
			require.NoError(t, err)
			assert.True(t, ok)
			assert.Equal(t, 3, n, "the consuming try spends the attempt too")
			requireNotLive(t, s, "login", ls.UserID, ls.ID)

			for _, consume := range []bool{false, true} {
				n, ok, err := s.TryOTPChallenge(ctx, ch.ID, consume)
				require.NoError(t, err)
				assert.False(t, ok, "a consumed challenge takes no try")
				assert.Zero(t, n)
			}
			_, ok, err = s.TryOTPChallenge(ctx, "missing", true)
			require.NoError(t, err)
			assert.False(t, ok)
		}},
		{"TestOTPChallenges_TryRefusesUsedUpExpiredAndBurned", func(t *testing.T, s *storage.Store, clk *clock) {
			ctx := t.Context()
			u := newTestUser(t, s)
			used := newTestOTPChallenge(t, s, clk, "login", u.ID, "used-up")
			for range 3 {
				_, ok, err := s.TryOTPChallenge(ctx, used.ID, false)
				require.NoError(t, err)
				require.True(t, ok)
			}
			_, ok, err := s.TryOTPChallenge(ctx, used.ID, true)
			require.NoError(t, err)
			assert.False(t, ok, "no attempts left: not even a right code consumes it")
			got, err := s.LiveOTPChallenge(ctx, "login", u.ID, "used-up")
			require.NoError(t, err)
			assert.Equal(t, 3, got.Attempts)
			assert.Nil(t, got.ConsumedAt)

			expired := newTestOTPChallenge(t, s, clk, "account", u.ID, "")
			clk.Set(expired.ExpiresAt) // valid until ExpiresAt only
			_, ok, err = s.TryOTPChallenge(ctx, expired.ID, true)
			require.NoError(t, err)
			assert.False(t, ok, "an expired challenge takes no try")
			got, err = s.LiveOTPChallenge(ctx, "account", u.ID, "")
			require.NoError(t, err)
			assert.Zero(t, got.Attempts)
			assert.Nil(t, got.ConsumedAt)

			burned := newTestOTPChallenge(t, s, clk, "login", u.ID, "burned")
			require.NoError(t, s.BurnOTPChallenge(ctx, burned.ID))
			_, ok, err = s.TryOTPChallenge(ctx, burned.ID, true)
			require.NoError(t, err)
			assert.False(t, ok, "a burned challenge takes no try")
		}},
		{"TestOTPChallenges_TryIsUndoneWithItsTransaction", func(t *testing.T, s *storage.Store, clk *clock) {
			u := newTestUser(t, s)
			ch := newTestOTPChallenge(t, s, clk, "account", u.ID, "")
			err := s.InTx(t.Context(), func(ctx context.Context) error {
				_, ok, err := s.TryOTPChallenge(ctx, ch.ID, true)
				require.NoError(t, err)
				require.True(t, ok)
				return errRollback
			})
			require.ErrorIs(t, err, errRollback)
			got, err := s.LiveOTPChallenge(t.Context(), "account", u.ID, "")
			require.NoError(t, err, "rolled back: still live")
			assert.Zero(t, got.Attempts)
		}},
		{"TestOTPChallenges_ConcurrentTriesGrantExactlyMaxAttempts", func(t *testing.T, s *storage.Store, clk *clock) {
			u := newTestUser(t, s)
			ch := &storage.OTPChallenge{Kind: "account", UserID: u.ID, CodeHash: []byte("h"),
				MaxAttempts: 5, ExpiresAt: clk.Now().Add(time.Minute)}
			require.NoError(t, s.CreateOTPChallenge(t.Context(), ch))
			const tries = 50
			var (
				wg       sync.WaitGroup
				mu       sync.Mutex
				start    = make(chan struct{})
				attempts []int
			)
			for range tries {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					n, ok, err := s.TryOTPChallenge(t.Context(), ch.ID, false)
					assert.NoError(t, err)
					if ok {
						mu.Lock()
						attempts = append(attempts, n)
						mu.Unlock()
					}
				}()
			}
			close(start)
			wg.Wait()
			sort.Ints(attempts)
			assert.Equal(t, []int{1, 2, 3, 4, 5}, attempts)
			got, err := s.LiveOTPChallenge(t.Context(), "account", u.ID, "")
			require.NoError(t, err)
			assert.Equal(t, 5, got.Attempts)
		}},
		{"TestOTPChallenges_ConcurrentConsumingTriesHaveExactlyOneWinner", func(t *testing.T, s *storage.Store, clk *clock) {
			ls := newTestLoginSession(t, s, clk)
			ch := &storage.OTPChallenge{Kind: "login", UserID: ls.UserID, SessionID: ls.ID, CodeHash: []byte("h"),
				MaxAttempts: 2 * racers, ExpiresAt: clk.Now().Add(time.Minute)}
			require.NoError(t, s.CreateOTPChallenge(t.Context(), ch))
			won := make([]bool, racers)
			errs := race(func(i int) error {
				// Each in a transaction of its own, as VerifyOTP runs it.
				return s.InTx(t.Context(), func(ctx context.Context) error {
					var err error
					_, won[i], err = s.TryOTPChallenge(ctx, ch.ID, true)
					return err
				})
			})
			winners := 0
			for i := range racers {
				require.NoError(t, errs[i])
				if won[i] {
					winners++
				}
			}
			assert.Equal(t, 1, winners)
			requireNotLive(t, s, "login", ls.UserID, ls.ID)
		}},
		{"TestLoginSessions_PassAddsTheMethodOnceAndMarksPassed", func(t *testing.T, s *storage.Store, clk *clock) {
			ctx := t.Context()
			u := newTestUser(t, s)
			for _, tc := range []struct {
				amr, want []string
			}{
				{[]string{"pwd"}, []string{"pwd", "otp"}},
				{nil, []string{"otp"}},
				{[]string{"otp"}, []string{"otp"}},
				{[]string{"pwd", "otp"}, []string{"pwd", "otp"}},
				{[]string{"otp", "pwd"}, []string{"otp", "pwd"}},
				{[]string{"otpx", "xotp", `a"otp`, "fed"}, []string{"otpx", "xotp", `a"otp`, "fed", "otp"}},
			} {
				ls := &storage.LoginSession{UserID: u.ID, AMR: tc.amr, AuthTime: clk.Now().Add(-time.Minute),
					ExpiresAt: clk.Now().Add(time.Hour)}
				require.NoError(t, s.CreateLoginSession(ctx, ls))
				clk.Add(time.Second)
				require.NoError(t, s.PassLoginSession(ctx, ls.ID, u.ID, "otp"))
				got, err := s.GetLoginSession(ctx, ls.ID)
				require.NoError(t, err)
				assert.Equal(t, tc.want, got.AMR, "amr %q", tc.amr)
				assert.True(t, got.PassedLoginOTP)
				assert.Equal(t, clk.Now(), got.UpdatedAt)
				assert.Equal(t, ls.AuthTime, got.AuthTime, "auth_time is the first factor's")
				assert.Equal(t, ls.ExpiresAt, got.ExpiresAt)

				require.NoError(t, s.PassLoginSession(ctx, ls.ID, u.ID, "otp"), "passing again is not an error")
				got, err = s.GetLoginSession(ctx, ls.ID)
				require.NoError(t, err)
				assert.Equal(t, tc.want, got.AMR, "amr %q passed twice", tc.amr)
			}
		}},
		{"TestLoginSessions_PassIsNotFoundForMissingExpiredOrOtherUsers", func(t *testing.T, s *storage.Store, clk *clock) {
			ctx := t.Context()
			ls := newTestLoginSession(t, s, clk)
			other := newTestUser(t, s)
			requireNotFound(t, s.PassLoginSession(ctx, ls.ID, other.ID, "otp"))
			requireNotFound(t, s.PassLoginSession(ctx, "missing", ls.UserID, "otp"))
			got, err := s.GetLoginSession(ctx, ls.ID)
			require.NoError(t, err)
			assert.False(t, got.PassedLoginOTP, "another user's call changed nothing")
			assert.Equal(t, []string{"pwd"}, got.AMR)

			assert.Error(t, s.PassLoginSession(ctx, ls.ID, ls.UserID, `o"tp`), "not an RFC 8176 value")
			assert.Error(t, s.PassLoginSession(ctx, ls.ID, ls.UserID, "%"))

			clk.Set(ls.ExpiresAt)
			requireNotFound(t, s.PassLoginSession(ctx, ls.ID, ls.UserID, "otp"))
		}},
		{"TestRateCounters_CheckCountsOnlyRefusalsAndCountHitCountsTries", func(t *testing.T, s *storage.Store, clk *clock) {
			ctx := t.Context()
			const window, limit = 15 * time.Minute, 3
			t0 := clk.Now()
			for want := 0; want < limit; want++ {
				n, resetAt, err := s.CheckRateCounter(ctx, "k", window, limit)
				require.NoError(t, err)
				assert.Equal(t, want, n, "a check counts nothing below the limit")
				assert.Equal(t, t0.Add(window), resetAt, "the window starts at the first check")
				n, _, err = s.CheckRateCounter(ctx, "k", window, limit)
				require.NoError(t, err)
				assert.Equal(t, want, n)
				require.NoError(t, s.CountRateCounterHit(ctx, "k"))
				clk.Add(time.Second)
			}
			for _, want := range []int{limit + 1, limit + 2} {
				n, resetAt, err := s.CheckRateCounter(ctx, "k", window, limit)
				require.NoError(t, err)
				assert.Equal(t, want, n, "refusals are counted: the first is limit+1")
				assert.Equal(t, t0.Add(window), resetAt)
			}
			peek, _, err := s.PeekRateCounter(ctx, "k", window)
			require.NoError(t, err)
			assert.Equal(t, limit+2, peek)

			clk.Set(t0.Add(window))
			n, resetAt, err := s.CheckRateCounter(ctx, "k", window, limit)
			require.NoError(t, err)
			assert.Zero(t, n, "a new window")
			assert.Equal(t, clk.Now().Add(window), resetAt)

			n, _, err = s.CheckRateCounter(ctx, "other", window, limit)
			require.NoError(t, err)
			assert.Zero(t, n, "keys are apart")
			assert.NoError(t, s.CountRateCounterHit(ctx, "unknown"), "an unknown key is not an error")
			peek, _, err = s.PeekRateCounter(ctx, "unknown", window)
			require.NoError(t, err)
			assert.Zero(t, peek, "and counts nothing")
		}},
		{"TestRateCounters_CheckWithLimitZeroRefusesTheFirst", func(t *testing.T, s *storage.Store, clk *clock) {
			const window = time.Minute
			for _, want := range []int{1, 2} {
				n, _, err := s.CheckRateCounter(t.Context(), "k", window, 0)
				require.NoError(t, err)
				assert.Equal(t, want, n)
			}
			clk.Add(window)
			n, _, err := s.CheckRateCounter(t.Context(), "k", window, 0)
			require.NoError(t, err)
			assert.Equal(t, 1, n, "a new window's first refusal")
		}},
		{"TestRateCounters_CheckThenCountInTransactionsIsAtomic", func(t *testing.T, s *storage.Store, _ *clock) {
			// Each racer checks, then counts its try in the same transaction,
			// as VerifyOTP does: no more than limit tries pass, however they
			// interleave.
			const window, limit = time.Hour, 3
			for round := range 3 {
				key := "k" + string(rune('a'+round))
				passed := make([]bool, racers)
				errs := race(func(i int) error {
					return s.InTx(t.Context(), func(ctx context.Context) error {
						n, _, err := s.CheckRateCounter(ctx, key, window, limit)
						if err != nil || n > limit {
							return err
						}
						passed[i] = true
						return s.CountRateCounterHit(ctx, key)
					})
				})
				tries := 0
				for i := range racers {
					require.NoError(t, errs[i], "round %d", round)
					if passed[i] {
						tries++
					}
				}
				assert.Equal(t, limit, tries, "round %d", round)
				n, _, err := s.PeekRateCounter(t.Context(), key, window)
				require.NoError(t, err)
				assert.Equal(t, racers, n, "round %d: limit tries and racers-limit refusals", round)
			}
		}},
	}
}
