package storagetest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otpstep/otpstep/storage"
)

func rateCounterTests() []conformanceTest {
	const window = time.Minute
	return []conformanceTest{
		{"TestRateCounter_HitCountsWithinTheWindow", func(t *testing.T, s *storage.Store, clk *clock) {
			resetAt := clk.Now().Add(window)
			for want := 1; want <= 3; want++ {
				n, at, err := s.HitRateCounter(t.Context(), "login:alice", window)
				require.NoError(t, err)
				assert.Equal(t, want, n)
				assert.Equal(t, resetAt, at)
				clk.Add(window / 4)
			}
			n, _, err := s.HitRateCounter(t.Context(), "login:bob", window)
			require.NoError(t, err)
			assert.Equal(t, 1, n, "keys count apart")
		}},
		{"TestRateCounter_WindowRestartsWhenOver", func(t *testing.T, s *storage.Store, clk *clock) {
			for range 3 {
				_, _, err := s.HitRateCounter(t.Context(), "k", window)
				require.NoError(t, err)
			}
			clk.Add(window) // the window [start, start+window) is over
			n, at, err := s.HitRateCounter(t.Context(), "k", window)
			require.NoError(t, err)
			assert.Equal(t, 1, n)
			assert.Equal(t, clk.Now().Add(window), at)
		}},
		{"TestRateCounter_PeekDoesNotCount", func(t *testing.T, s *storage.Store, clk *clock) {
			n, at, err := s.PeekRateCounter(t.Context(), "k", window)
			require.NoError(t, err)
			assert.Zero(t, n)
			assert.True(t, at.IsZero())

			start := clk.Now()
			for range 2 {
				_, _, err := s.HitRateCounter(t.Context(), "k", window)
				require.NoError(t, err)
			}
			for range 2 {
				n, at, err = s.PeekRateCounter(t.Context(), "k", window)
				require.NoError(t, err)
				assert.Equal(t, 2, n)
				assert.Equal(t, start.Add(window), at)
			}
			clk.Add(window)
			n, _, err = s.PeekRateCounter(t.Context(), "k", window)
			require.NoError(t, err)
			assert.Zero(t, n, "a window that is over counts nothing")
		}},
		// One rule for when a window is over, whichever method reads it: the
		// end stored with the window (reset_at). HitRateCounter, Peek and
		// Check judged by start + the window passed in, so a window begun with
		// an hour (HitRateCounters) was over for them after a minute.
		{"TestRateCounter_AWindowEndsWhenItsStoredEndPasses", func(t *testing.T, s *storage.Store, clk *clock) {
			ctx := t.Context()
			end := clk.Now().Add(time.Hour)
			got, err := s.HitRateCounters(ctx, storage.RateHit{Key: "k", Window: time.Hour})
			require.NoError(t, err)
			require.Equal(t, []storage.RateCount{{Count: 1, ResetAt: end}}, got)
			clk.Add(2 * window)
			n, at, err := s.PeekRateCounter(ctx, "k", window)
			require.NoError(t, err)
			assert.Equal(t, 1, n, "peek")
			assert.Equal(t, end, at, "peek")
			n, at, err = s.CheckRateCounter(ctx, "k", window, 5)
			require.NoError(t, err)
			assert.Equal(t, 1, n, "check")
			assert.Equal(t, end, at, "check")
			n, at, err = s.HitRateCounter(ctx, "k", window)
			require.NoError(t, err)
			assert.Equal(t, 2, n, "hit")
			assert.Equal(t, end, at, "hit")
			clk.Add(time.Hour)
			n, at, err = s.HitRateCounter(ctx, "k", window)
			require.NoError(t, err)
			assert.Equal(t, 1, n, "after the stored end, a new window")
			assert.Equal(t, clk.Now().Add(window), at)
		}},
		{"TestRateCounter_HitSeveralKeysEachInItsOwnWindow", func(t *testing.T, s *storage.Store, clk *clock) {
			ctx := t.Context()
			start := clk.Now()
			short, long := storage.RateHit{Key: "resend", Window: 30 * time.Second}, storage.RateHit{Key: "sends", Window: time.Hour}
			for want := 1; want <= 2; want++ {
				got, err := s.HitRateCounters(ctx, short, long)
				require.NoError(t, err)
				assert.Equal(t, []storage.RateCount{{Count: want, ResetAt: start.Add(30 * time.Second)}, {Count: want, ResetAt: start.Add(time.Hour)}}, got)
			}
			// The single-key hit and peek see the same rows.
			n, _, err := s.HitRateCounter(ctx, "sends", time.Hour)
			require.NoError(t, err)
			assert.Equal(t, 3, n)
			clk.Add(30 * time.Second)                       // the short window is over, the long one is not
			got, err := s.HitRateCounters(ctx, long, short) // any order; counts come back in it
			require.NoError(t, err)
			assert.Equal(t, []storage.RateCount{{Count: 4, ResetAt: start.Add(time.Hour)}, {Count: 1, ResetAt: clk.Now().Add(30 * time.Second)}}, got)
			got, err = s.HitRateCounters(ctx)
			require.NoError(t, err)
			assert.Empty(t, got)
		}},
		{"TestRateCounter_HitsRolledBackWithTheirTransaction", func(t *testing.T, s *storage.Store, _ *clock) {
			// The OTP send limits are counted inside the issuing transaction:
			// a refused request rolls its hits back.
			errRefused := errors.New("refused")
			err := s.InTx(t.Context(), func(ctx context.Context) error {
				got, err := s.HitRateCounters(ctx, storage.RateHit{Key: "a", Window: window}, storage.RateHit{Key: "b", Window: window})
				require.NoError(t, err)
				assert.Equal(t, 1, got[1].Count)
				return errRefused
			})
			require.ErrorIs(t, err, errRefused)
			for _, k := range []string{"a", "b"} {
				n, _, err := s.PeekRateCounter(t.Context(), k, window)
				require.NoError(t, err)
				assert.Zero(t, n, k)
			}
		}},
		{"TestRateCounter_ConcurrentMultiKeyHitsCountEachOnce", func(t *testing.T, s *storage.Store, _ *clock) {
			// Many callers, each its own key plus one shared key (the shape of
			// the OTP send limits: per session, per user), in transactions.
			const callers = 16
			var wg sync.WaitGroup
			counts := make(chan int, callers)
			for i := range callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					err := s.InTx(t.Context(), func(ctx context.Context) error {
						got, err := s.HitRateCounters(ctx, storage.RateHit{Key: fmt.Sprintf("own-%d", i), Window: window},
							storage.RateHit{Key: "shared", Window: window})
						if err != nil {
							return err
						}
						counts <- got[1].Count
						return nil
					})
					assert.NoError(t, err)
				}()
			}
			wg.Wait()
			close(counts)
			var seen []int
			for c := range counts {
				seen = append(seen, c)
			}
			sort.Ints(seen)
			want := make([]int, callers)
			for i := range want {
				want[i] = i + 1
			}
			assert.Equal(t, want, seen, "every shared count handed out exactly once")
		}},
		{"TestRateCounter_ResetForgetsTheWindow", func(t *testing.T, s *storage.Store, _ *clock) {
			for range 2 {
				_, _, err := s.HitRateCounter(t.Context(), "k", window)
				require.NoError(t, err)
			}
			require.NoError(t, s.ResetRateCounter(t.Context(), "k"))
			n, _, err := s.HitRateCounter(t.Context(), "k", window)
			require.NoError(t, err)
			assert.Equal(t, 1, n)
			assert.NoError(t, s.ResetRateCounter(t.Context(), "unknown"))
		}},
		{"TestRateCounter_ConcurrentHitsAreCountedExactlyOnce", func(t *testing.T, s *storage.Store, _ *clock) {
			const hits = 24
			var (
				mu     sync.Mutex
				counts []int
				wg     sync.WaitGroup
			)
			for range hits {
				wg.Add(1)
				go func() {
					defer wg.Done()
					n, _, err := s.HitRateCounter(t.Context(), "k", window)
					assert.NoError(t, err)
					mu.Lock()
					counts = append(counts, n)
					mu.Unlock()
				}()
			}
			wg.Wait()
			sort.Ints(counts)
			want := make([]int, hits)
			for i := range want {
				want[i] = i + 1
			}
			assert.Equal(t, want, counts)
		}},
	}
}

func purgeTests() []conformanceTest {
	return []conformanceTest{
		{"TestPurgeExpired_DeletesOnlyWhatExpiredBefore", func(t *testing.T, s *storage.Store, clk *clock) {
			ctx := t.Context()
			client := newTestClient(t, s, "rp")
			// "old" rows expire within the hour, "new" ones a day later.
			old := newTestRequest(clk, client, "alice")
			oldLogin := newTestLoginSession(t, s, clk)
			require.NoError(t, s.SetClientAssertionJWT(ctx, "jti-old", clk.Now().Add(time.Minute)))
			// Recorded now: a later SetClientAssertionJWT would delete jti-old itself.
			require.NoError(t, s.SetClientAssertionJWT(ctx, "jti-new", clk.Now().Add(48*time.Hour)))
			_, _, err := s.HitRateCounter(ctx, "rate-old", time.Minute)
			require.NoError(t, err)

			clk.Add(24 * time.Hour)
			fresh := newTestRequest(clk, client, "bob")
			freshLogin := newTestLoginSession(t, s, clk)
			_, _, err = s.HitRateCounter(ctx, "rate-new", time.Minute)
			require.NoError(t, err)

			for prefix, r := range map[string]*fosite.Request{"old": old, "new": fresh} {
				require.NoError(t, s.CreateAuthorizeCodeSession(ctx, "code-"+prefix, r))
				require.NoError(t, s.CreateAccessTokenSession(ctx, "at-"+prefix, r))
				require.NoError(t, s.CreateRefreshTokenSession(ctx, "rt-"+prefix, "at-"+prefix, r))
				require.NoError(t, s.CreatePKCERequestSession(ctx, "pkce-"+prefix, r))
				require.NoError(t, s.CreateOpenIDConnectSession(ctx, "oidc-"+prefix, r))
			}
			noExpiry := newTestRequest(clk, client, "carol")
			delete(noExpiry.Session.(*openid.DefaultSession).ExpiresAt, fosite.RefreshToken)
			require.NoError(t, s.CreateRefreshTokenSession(ctx, "rt-forever", "at-x", noExpiry))

			// old: code, access, pkce, oidc, jti, login session, rate counter; the old
			// refresh token lives 30 days and stays.
			n, err := s.PurgeExpired(ctx, clk.Now())
			require.NoError(t, err)
			assert.Equal(t, int64(7), n)

			_, err = s.GetAuthorizeCodeSession(ctx, "code-old", nil)
			requireNotFound(t, err)
			_, err = s.GetAccessTokenSession(ctx, "at-old", nil)
			requireNotFound(t, err)
			_, err = s.GetPKCERequestSession(ctx, "pkce-old", nil)
			requireNotFound(t, err)
			_, err = s.GetOpenIDConnectSession(ctx, "oidc-old", fosite.NewAccessRequest(nil))
			requireNotFound(t, err)
			_, err = s.GetLoginSession(ctx, oldLogin.ID)
			requireNotFound(t, err)
			n2, _, err := s.PeekRateCounter(ctx, "rate-old", 100*24*time.Hour)
			require.NoError(t, err)
			assert.Zero(t, n2, "the row is gone, so even a long window sees nothing")
			assert.NoError(t, s.ClientAssertionJWTValid(ctx, "jti-old"))

			_, err = s.GetAuthorizeCodeSession(ctx, "code-new", nil)
			assert.NoError(t, err)
			_, err = s.GetAccessTokenSession(ctx, "at-new", nil)
			assert.NoError(t, err)
			for _, sig := range []string{"rt-old", "rt-new", "rt-forever"} {
				_, err = s.GetRefreshTokenSession(ctx, sig, nil)
				assert.NoError(t, err, sig)
			}
			_, err = s.GetPKCERequestSession(ctx, "pkce-new", nil)
			assert.NoError(t, err)
			_, err = s.GetLoginSession(ctx, freshLogin.ID)
			assert.NoError(t, err)
			assert.ErrorIs(t, s.ClientAssertionJWTValid(ctx, "jti-new"), fosite.ErrJTIKnown)
			n2, _, err = s.PeekRateCounter(ctx, "rate-new", time.Minute)
			require.NoError(t, err)
			assert.Equal(t, 1, n2)

			n, err = s.PurgeExpired(ctx, clk.Now())
			require.NoError(t, err)
			assert.Zero(t, n, "purging again finds nothing")
		}},
	}
}
