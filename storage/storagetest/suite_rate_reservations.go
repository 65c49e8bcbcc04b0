package storagetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otpstep/otpstep/storage"
)

// rateReservationTests hold ReserveRateCounters and ReleaseRateCounter to
// their contract: a reservation is counted before the work it stands for, all
// keys or none, never past a Max however many callers race, and given back
// only to the window it was taken from.
func rateReservationTests() []conformanceTest {
	const window = time.Minute
	account := func(n int) storage.RateHit { return storage.RateHit{Key: "acct", Window: window, Max: n} }
	ip := func(n int) storage.RateHit { return storage.RateHit{Key: "ip", Window: window, Max: n} }
	peek := func(t *testing.T, s *storage.Store, key string) int {
		t.Helper()
		n, _, err := s.PeekRateCounter(t.Context(), key, window)
		require.NoError(t, err)
		return n
	}
	return []conformanceTest{
		{"TestRateReservation_CountsUpToMaxThenRefusesCountingNothing", func(t *testing.T, s *storage.Store, clk *clock) {
			ctx := t.Context()
			resetAt := clk.Now().Add(window)
			for want := 1; want <= 3; want++ {
				got, reserved, err := s.ReserveRateCounters(ctx, account(3), ip(5))
				require.NoError(t, err)
				assert.True(t, reserved, "reservation %d", want)
				assert.Equal(t, []storage.RateCount{{Count: want, ResetAt: resetAt}, {Count: want, ResetAt: resetAt}}, got)
				clk.Add(time.Second)
			}
			// The fourth would count 4 on both: past the account's Max, so
			// neither key counts it.
			got, reserved, err := s.ReserveRateCounters(ctx, account(3), ip(5))
			require.NoError(t, err)
			assert.False(t, reserved)
			assert.Equal(t, []storage.RateCount{{Count: 4, ResetAt: resetAt}, {Count: 4, ResetAt: resetAt}}, got,
				"what each would have counted, with its window's end")
			assert.Equal(t, 3, peek(t, s, "acct"))
			assert.Equal(t, 3, peek(t, s, "ip"), "all or none: the key within its Max is not counted either")
			// The key within its Max alone still reserves.
			got, reserved, err = s.ReserveRateCounters(ctx, ip(5))
			require.NoError(t, err)
			assert.True(t, reserved)
			assert.Equal(t, 4, got[0].Count)
			// No hits: nothing to refuse.
			got, reserved, err = s.ReserveRateCounters(ctx)
			require.NoError(t, err)
			assert.True(t, reserved)
			assert.Empty(t, got)
		}},
		{"TestRateReservation_SharesTheWindowRuleOfTheCounters", func(t *testing.T, s *storage.Store, clk *clock) {
			ctx := t.Context()
			_, _, err := s.HitRateCounter(ctx, "acct", window)
			require.NoError(t, err)
			got, reserved, err := s.ReserveRateCounters(ctx, account(2))
			require.NoError(t, err)
			assert.True(t, reserved)
			assert.Equal(t, 2, got[0].Count, "a reservation counts in the window a hit started")
			_, reserved, err = s.ReserveRateCounters(ctx, account(2))
			require.NoError(t, err)
			assert.False(t, reserved)
			clk.Add(window) // the window is over
			got, reserved, err = s.ReserveRateCounters(ctx, account(2))
			require.NoError(t, err)
			assert.True(t, reserved)
			assert.Equal(t, []storage.RateCount{{Count: 1, ResetAt: clk.Now().Add(window)}}, got)
			assert.Equal(t, 1, peek(t, s, "acct"))
		}},
		{"TestRateReservation_ReleaseGivesBackToItsOwnWindowOnly", func(t *testing.T, s *storage.Store, clk *clock) {
			ctx := t.Context()
			var first []storage.RateCount
			for range 2 {
				got, reserved, err := s.ReserveRateCounters(ctx, account(2))
				require.NoError(t, err)
				require.True(t, reserved)
				first = got
			}
			_, reserved, err := s.ReserveRateCounters(ctx, account(2))
			require.NoError(t, err)
			require.False(t, reserved)
			require.NoError(t, s.ReleaseRateCounter(ctx, "acct", first[0].ResetAt))
			assert.Equal(t, 1, peek(t, s, "acct"))
			got, reserved, err := s.ReserveRateCounters(ctx, account(2))
			require.NoError(t, err)
			assert.True(t, reserved, "the released reservation is free again")
			assert.Equal(t, 2, got[0].Count)

			// A window that ended keeps its reservation: a release of it
			// leaves the new window alone.
			clk.Add(window)
			got, reserved, err = s.ReserveRateCounters(ctx, account(2))
			require.NoError(t, err)
			require.True(t, reserved)
			require.Equal(t, 1, got[0].Count)
			require.NoError(t, s.ReleaseRateCounter(ctx, "acct", first[0].ResetAt))
			assert.Equal(t, 1, peek(t, s, "acct"))
			// A count never goes below zero; an unknown key is no error.
			for range 3 {
				require.NoError(t, s.ReleaseRateCounter(ctx, "acct", got[0].ResetAt))
			}
			assert.Equal(t, 0, peek(t, s, "acct"))
			assert.NoError(t, s.ReleaseRateCounter(ctx, "unknown", got[0].ResetAt))
		}},
		{"TestRateReservation_ConcurrentCallersNeverPassMax", func(t *testing.T, s *storage.Store, _ *clock) {
			// The login limits' shape: 30 callers on one account and one IP
			// (Max 5 and 50), then 70 on distinct accounts and one IP.
			race := func(callers int, hits func(i int) []storage.RateHit) int {
				var (
					wg       sync.WaitGroup
					reserved atomic.Int32
				)
				for i := range callers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						_, ok, err := s.ReserveRateCounters(t.Context(), hits(i)...)
						assert.NoError(t, err)
						if ok {
							reserved.Add(1)
						}
					}()
				}
				wg.Wait()
				return int(reserved.Load())
			}
			n := race(30, func(int) []storage.RateHit { return []storage.RateHit{account(5), ip(50)} })
			assert.Equal(t, 5, n, "one account")
			assert.Equal(t, 5, peek(t, s, "acct"))
			assert.Equal(t, 5, peek(t, s, "ip"))
			n = race(70, func(i int) []storage.RateHit {
				return []storage.RateHit{{Key: fmt.Sprintf("acct-%d", i), Window: window, Max: 5}, ip(50)}
			})
			assert.Equal(t, 45, n, "one IP, 5 of its 50 already reserved")
			assert.Equal(t, 50, peek(t, s, "ip"))
		}},
		{"TestRateReservation_InsideATransactionARefusalKeepsItUsable", func(t *testing.T, s *storage.Store, _ *clock) {
			errDone := errors.New("roll back")
			err := s.InTx(t.Context(), func(ctx context.Context) error {
				_, reserved, err := s.ReserveRateCounters(ctx, account(1))
				require.NoError(t, err)
				require.True(t, reserved)
				_, reserved, err = s.ReserveRateCounters(ctx, account(1), ip(5))
				require.NoError(t, err)
				require.False(t, reserved)
				// The transaction goes on after the refusal, which counted nothing.
				got, reserved, err := s.ReserveRateCounters(ctx, ip(5))
				require.NoError(t, err)
				require.True(t, reserved)
				assert.Equal(t, 1, got[0].Count)
				return errDone
			})
			require.ErrorIs(t, err, errDone)
			assert.Equal(t, 0, peek(t, s, "acct"), "the caller's rollback takes its reservations back")
			assert.Equal(t, 0, peek(t, s, "ip"))
		}},
	}
}
