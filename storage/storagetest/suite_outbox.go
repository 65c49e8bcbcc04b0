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
		{"TestOutbox_ExtendLeaseKeepsOnlyTheClaimersRows", func(t *testing.T, s *storage.Store, clk *clock) {
			ctx := t.Context()
			for _, id := range []string{"m1", "m2", "m3"} {
				enqueue(t, s, id)
			}
			got, err := s.ClaimOutbox(ctx, 3, lease)
			require.NoError(t, err)
			require.Len(t, got, 3)
			claimedUntil := got[0].AvailableAt
			// m2 is settled (deleted); m3's lease ran out and another claim took it.
			_, err = s.DeleteOutboxMessages(ctx, []string{"m2"})
			require.NoError(t, err)
			require.NoError(t, s.RescheduleOutboxMessage(ctx, "m3", clk.Now(), ""))
			clk.Add(10 * time.Second)
			other, err := s.ClaimOutbox(ctx, 3, lease)
			require.NoError(t, err)
			assert.Equal(t, []string{"m3"}, outboxIDs(other))

			held, until, err := s.ExtendOutboxLease(ctx, []string{"m1", "m2", "m3"}, claimedUntil, lease)
			require.NoError(t, err)
			assert.Equal(t, []string{"m1"}, held, "only the rows still under this claim's lease")
			assert.Equal(t, clk.Now().Add(lease), until)
			clk.Add(lease - time.Second) // past the first lease's end, inside the extended one
			again, err := s.ClaimOutbox(ctx, 3, lease)
			require.NoError(t, err)
			assert.Empty(t, again, "an extended lease hides the row")
			// The old end no longer matches: a second extension with it holds nothing.
			held, _, err = s.ExtendOutboxLease(ctx, []string{"m1"}, claimedUntil, lease)
			require.NoError(t, err)
			assert.Empty(t, held)
			held, _, err = s.ExtendOutboxLease(ctx, []string{"m1"}, until, lease)
			require.NoError(t, err)
			assert.Equal(t, []string{"m1"}, held)
			held, _, err = s.ExtendOutboxLease(ctx, nil, until, lease)
			require.NoError(t, err)
			assert.Empty(t, held)
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
		{"TestOutbox_DeleteManyRemovesExactlyThoseInOneCall", func(t *testing.T, s *storage.Store, clk *clock) {
			ctx := t.Context()
			odd := `m"2'\` // quotes and a backslash survive the list encoding
			for _, id := range []string{"m1", odd, "m3", "m4"} {
				enqueue(t, s, id)
				clk.Add(time.Second)
			}
			got, err := s.ClaimOutbox(ctx, 10, lease)
			require.NoError(t, err)
			require.Len(t, got, 4)

			n, err := s.DeleteOutboxMessages(ctx, nil)
			require.NoError(t, err)
			assert.Zero(t, n, "no IDs deletes nothing")
			n, err = s.DeleteOutboxMessages(ctx, []string{"m1", odd, "missing"})
			require.NoError(t, err)
			assert.Equal(t, 2, n, "a missing ID is skipped, not an error")
			n, err = s.DeleteOutboxMessages(ctx, []string{"m1"})
			require.NoError(t, err)
			assert.Zero(t, n, "deleting twice deletes nothing")

			pending, _, err := s.OutboxBacklog(ctx)
			require.NoError(t, err)
			assert.Equal(t, 2, pending)
			clk.Add(lease)
			got, err = s.ClaimOutbox(ctx, 10, lease)
			require.NoError(t, err)
			assert.Equal(t, []string{"m3", "m4"}, outboxIDs(got), "the others are untouched")
		}},
		{"TestOutbox_DeleteManyTakesALargeBatch", func(t *testing.T, s *storage.Store, _ *clock) {
			// More IDs than SQLite's historical 999-parameter limit: the list is
			// one parameter.
			const messages = 1500
			ids := make([]string, 0, messages)
			require.NoError(t, s.InTx(t.Context(), func(ctx context.Context) error {
				for i := range messages {
					id := fmt.Sprintf("m%04d", i)
					ids = append(ids, id)
					if err := s.EnqueueOutbox(ctx, &storage.OutboxMessage{ID: id, Sealed: []byte{1}}); err != nil {
						return err
					}
				}
				return nil
			}))
			enqueue(t, s, "kept")
			n, err := s.DeleteOutboxMessages(t.Context(), ids)
			require.NoError(t, err)
			assert.Equal(t, messages, n)
			pending, _, err := s.OutboxBacklog(t.Context())
			require.NoError(t, err)
			assert.Equal(t, 1, pending)
		}},
		{"TestOutbox_DeleteManyJoinsTheCallersTransaction", func(t *testing.T, s *storage.Store, _ *clock) {
			enqueue(t, s, "m1")
			enqueue(t, s, "m2")
			errBoom := errors.New("boom")
			err := s.InTx(t.Context(), func(ctx context.Context) error {
				n, err := s.DeleteOutboxMessages(ctx, []string{"m1", "m2"})
				require.NoError(t, err)
				assert.Equal(t, 2, n)
				return errBoom
			})
			require.ErrorIs(t, err, errBoom)
			pending, _, err := s.OutboxBacklog(t.Context())
			require.NoError(t, err)
			assert.Equal(t, 2, pending, "the delete is rolled back")
		}},
		{"TestOutbox_RescheduleManyDelaysRecordsTheErrorAndKeepsAttempts", func(t *testing.T, s *storage.Store, clk *clock) {
			ctx := t.Context()
			for _, id := range []string{"m1", "m2", "m3"} {
				enqueue(t, s, id)
				clk.Add(time.Second)
			}
			_, err := s.ClaimOutbox(ctx, 10, lease)
			require.NoError(t, err)

			n, err := s.RescheduleOutboxMessages(ctx, nil, clk.Now(), "")
			require.NoError(t, err)
			assert.Zero(t, n)
			n, err = s.RescheduleOutboxMessages(ctx, []string{"m1", "m2", "missing"}, clk.Now().Add(5*time.Minute), "451 try later")
			require.NoError(t, err)
			assert.Equal(t, 2, n, "a missing ID is skipped and not counted")

			clk.Add(lease) // m3's lease is over; m1's and m2's retry time is not
			got, err := s.ClaimOutbox(ctx, 10, lease)
			require.NoError(t, err)
			assert.Equal(t, []string{"m3"}, outboxIDs(got))
			assert.Empty(t, got[0].LastError, "a row not named keeps its last error")
			_, err = s.DeleteOutboxMessages(ctx, []string{"m3"})
			require.NoError(t, err)

			clk.Add(4 * time.Minute)
			got, err = s.ClaimOutbox(ctx, 10, lease)
			require.NoError(t, err)
			require.Equal(t, []string{"m1", "m2"}, outboxIDs(got))
			for _, m := range got {
				assert.Equal(t, "451 try later", m.LastError)
				assert.Equal(t, 2, m.Attempts, "rescheduling keeps Attempts")
			}

			// Releasing claims at once makes them claimable now.
			n, err = s.RescheduleOutboxMessages(ctx, []string{"m1", "m2"}, clk.Now(), "451 try later")
			require.NoError(t, err)
			assert.Equal(t, 2, n)
			got, err = s.ClaimOutbox(ctx, 10, lease)
			require.NoError(t, err)
			assert.Equal(t, []string{"m1", "m2"}, outboxIDs(got))
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
