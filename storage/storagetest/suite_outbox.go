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

// enqueue stores a message with a payload naming it.
func enqueue(t *testing.T, s *storage.Store, id string) *storage.OutboxMessage {
	t.Helper()
	m := &storage.OutboxMessage{ID: id, Sealed: []byte("sealed:" + id)}
	require.NoError(t, s.EnqueueOutbox(t.Context(), m))
	return m
}

func outboxIDs(msgs []storage.OutboxMessage) []string {
	ids := []string{}
	for _, m := range msgs {
		ids = append(ids, m.ID)
	}
	return ids
}

func outboxTests() []conformanceTest {
	const lease = time.Minute
	return []conformanceTest{
		{"TestOutbox_EnqueueFillsDefaults", func(t *testing.T, s *storage.Store, clk *clock) {
			m := &storage.OutboxMessage{Sealed: []byte{0x00, 0xff}}
			require.NoError(t, s.EnqueueOutbox(t.Context(), m))
			_, err := uuid.Parse(m.ID)
			require.NoError(t, err, "ID must be a UUID")
			assert.Equal(t, clk.Now(), m.CreatedAt)
			assert.Equal(t, clk.Now(), m.AvailableAt)

			later := &storage.OutboxMessage{ID: "later", Sealed: []byte("x"), AvailableAt: clk.Now().Add(time.Hour)}
			require.NoError(t, s.EnqueueOutbox(t.Context(), later))
			got, err := s.ClaimOutbox(t.Context(), 10, lease)
			require.NoError(t, err)
			assert.Equal(t, []storage.OutboxMessage{{
				ID: m.ID, Sealed: []byte{0x00, 0xff}, Attempts: 1,
				AvailableAt: clk.Now().Add(lease), CreatedAt: clk.Now(),
			}}, got, "a message is not claimed before its AvailableAt")
		}},
		{"TestOutbox_DuplicateIDIsAlreadyExists", func(t *testing.T, s *storage.Store, _ *clock) {
			enqueue(t, s, "m1")
			err := s.EnqueueOutbox(t.Context(), &storage.OutboxMessage{ID: "m1", Sealed: []byte("y")})
			assert.ErrorIs(t, err, storage.ErrAlreadyExists)
		}},
		{"TestOutbox_ClaimTakesTheOldestUpToLimitThenDelete", func(t *testing.T, s *storage.Store, clk *clock) {
			ctx := t.Context()
			for _, id := range []string{"m1", "m2", "m3"} {
				enqueue(t, s, id)
				clk.Add(time.Second)
			}
			got, err := s.ClaimOutbox(ctx, 2, lease)
			require.NoError(t, err)
			assert.Equal(t, []string{"m1", "m2"}, outboxIDs(got))
			for _, m := range got {
				assert.Equal(t, 1, m.Attempts)
				assert.Equal(t, clk.Now().Add(lease), m.AvailableAt)
				assert.Equal(t, []byte("sealed:"+m.ID), m.Sealed)
			}
			got, err = s.ClaimOutbox(ctx, 2, lease)
			require.NoError(t, err)
			assert.Equal(t, []string{"m3"}, outboxIDs(got))
			got, err = s.ClaimOutbox(ctx, 2, lease)
			require.NoError(t, err)
			assert.Empty(t, got)
			got, err = s.ClaimOutbox(ctx, 0, lease)
			require.NoError(t, err)
			assert.Empty(t, got)

			require.NoError(t, s.DeleteOutboxMessage(ctx, "m1"))
			assert.NoError(t, s.DeleteOutboxMessage(ctx, "m1"), "deleting a missing message is not an error")
			clk.Add(lease)
			got, err = s.ClaimOutbox(ctx, 10, lease)
			require.NoError(t, err)
			assert.Equal(t, []string{"m2", "m3"}, outboxIDs(got))
		}},
		{"TestOutbox_ClaimedIsNotClaimableBeforeTheLeaseEnds", func(t *testing.T, s *storage.Store, clk *clock) {
			ctx := t.Context()
			enqueue(t, s, "m1")
			got, err := s.ClaimOutbox(ctx, 10, lease)
			require.NoError(t, err)
			require.Len(t, got, 1)

			clk.Add(lease - time.Microsecond)
			got, err = s.ClaimOutbox(ctx, 10, lease)
			require.NoError(t, err)
			assert.Empty(t, got, "still leased")

			clk.Add(time.Microsecond)
			got, err = s.ClaimOutbox(ctx, 10, lease)
			require.NoError(t, err)
			require.Len(t, got, 1, "the lease ended: claimable again")
			assert.Equal(t, 2, got[0].Attempts)
			assert.Equal(t, clk.Now().Add(lease), got[0].AvailableAt)
		}},
		{"TestOutbox_RescheduleDelaysAndRecordsTheError", func(t *testing.T, s *storage.Store, clk *clock) {
			ctx := t.Context()
			enqueue(t, s, "m1")
			_, err := s.ClaimOutbox(ctx, 10, lease)
			require.NoError(t, err)
			require.NoError(t, s.RescheduleOutboxMessage(ctx, "m1", clk.Now().Add(5*time.Minute), "451 try later"))

			clk.Add(lease) // the lease is over, but the retry time is not
			got, err := s.ClaimOutbox(ctx, 10, lease)
			require.NoError(t, err)
			assert.Empty(t, got)

			clk.Add(4 * time.Minute)
			got, err = s.ClaimOutbox(ctx, 10, lease)
			require.NoError(t, err)
			require.Len(t, got, 1)
			assert.Equal(t, "451 try later", got[0].LastError)
			assert.Equal(t, 2, got[0].Attempts)

			// Releasing a claim at once makes it claimable now.
			require.NoError(t, s.RescheduleOutboxMessage(ctx, "m1", clk.Now(), got[0].LastError))
			got, err = s.ClaimOutbox(ctx, 10, lease)
			require.NoError(t, err)
			require.Len(t, got, 1)
			assert.Equal(t, 3, got[0].Attempts)

			requireNotFound(t, s.RescheduleOutboxMessage(ctx, "missing", clk.Now(), ""))
		}},
		{"TestOutbox_ConcurrentClaimersNeverShareAMessage", func(t *testing.T, s *storage.Store, _ *clock) {
			const messages, claimers, batch = 120, 6, 4
			require.NoError(t, s.InTx(t.Context(), func(ctx context.Context) error {
				for i := range messages {
					if err := s.EnqueueOutbox(ctx, &storage.OutboxMessage{ID: fmt.Sprintf("m%03d", i), Sealed: []byte{1}}); err != nil {
						return err
					}
				}
				return nil
			}))
			var (
				wg     sync.WaitGroup
				mu     sync.Mutex
				start  = make(chan struct{})
				claims = map[string]int{}
			)
			for range claimers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					for {
						got, err := s.ClaimOutbox(t.Context(), batch, lease)
						if !assert.NoError(t, err) || len(got) == 0 {
							return
						}
						mu.Lock()
						for _, m := range got {
							claims[m.ID]++
						}
						mu.Unlock()
					}
				}()
			}
			close(start)
			wg.Wait()
			assert.Len(t, claims, messages, "every message claimed")
			for id, n := range claims {
				assert.Equal(t, 1, n, "message %s claimed %d times", id, n)
			}
		}},
		{"TestOutbox_EnqueueJoinsTheCallersTransaction", func(t *testing.T, s *storage.Store, clk *clock) {
			u := newTestUser(t, s)
			errBoom := errors.New("boom")
			for _, fail := range []bool{true, false} {
				err := s.InTx(t.Context(), func(ctx context.Context) error {
					ch := &storage.OTPChallenge{Kind: "account", UserID: u.ID, CodeHash: []byte("h"),
						MaxAttempts: 3, ExpiresAt: clk.Now().Add(time.Minute)}
					if err := s.CreateOTPChallenge(ctx, ch); err != nil {
						return err
					}
					if err := s.EnqueueOutbox(ctx, &storage.OutboxMessage{Sealed: []byte("mail")}); err != nil {
						return err
					}
					if fail {
						return errBoom
					}
					return nil
				})
				pending, _, berr := s.OutboxBacklog(t.Context())
				require.NoError(t, berr)
				_, lerr := s.LiveOTPChallenge(t.Context(), "account", u.ID, "")
				if fail {
					require.ErrorIs(t, err, errBoom)
					assert.Zero(t, pending, "the mail is rolled back with the challenge")
					requireNotFound(t, lerr)
				} else {
					require.NoError(t, err)
					assert.Equal(t, 1, pending)
					assert.NoError(t, lerr)
				}
			}
		}},
		{"TestOutbox_BacklogCountsEveryQueuedMessage", func(t *testing.T, s *storage.Store, clk *clock) {
			ctx := t.Context()
			pending, oldest, err := s.OutboxBacklog(ctx)
			require.NoError(t, err)
			assert.Zero(t, pending)
			assert.True(t, oldest.IsZero())

			start := clk.Now()
			enqueue(t, s, "m1")
			clk.Add(time.Minute)
			enqueue(t, s, "m2")
			require.NoError(t, s.EnqueueOutbox(ctx, &storage.OutboxMessage{ID: "m3", Sealed: []byte{1},
				AvailableAt: clk.Now().Add(time.Hour)}))
			_, err = s.ClaimOutbox(ctx, 1, lease)
			require.NoError(t, err)
			pending, oldest, err = s.OutboxBacklog(ctx)
			require.NoError(t, err)
			assert.Equal(t, 3, pending, "leased and scheduled messages are still pending")
			assert.Equal(t, start, oldest)

			require.NoError(t, s.DeleteOutboxMessage(ctx, "m1"))
			pending, oldest, err = s.OutboxBacklog(ctx)
			require.NoError(t, err)
			assert.Equal(t, 2, pending)
			assert.Equal(t, start.Add(time.Minute), oldest)
		}},
	}
}
