package storagetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/ory/fosite"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/otpstep/otpstep/storage"
)

// userExists reports whether a user with this email is visible outside any transaction.
func userExists(t *testing.T, s *storage.Store, email string) bool {
	t.Helper()
	_, err := s.GetUserByEmail(t.Context(), email)
	if errors.Is(err, storage.ErrNotFound) {
		return false
	}
	require.NoError(t, err)
	return true
}

func transactionTests() []conformanceTest {
	errBoom := errors.New("boom")
	return []conformanceTest{
		{"TestTransactional_CommitPersists", func(t *testing.T, s *storage.Store, _ *clock) {
			ctx, err := s.BeginTX(t.Context())
			require.NoError(t, err)
			require.NoError(t, s.CreateUser(ctx, &storage.User{Email: "tx@example.com"}))
			_, err = s.GetUserByEmail(ctx, "tx@example.com")
			require.NoError(t, err, "a transaction sees its own writes")
			require.NoError(t, s.Commit(ctx))
			assert.True(t, userExists(t, s, "tx@example.com"))
		}},
		{"TestTransactional_RollbackDiscards", func(t *testing.T, s *storage.Store, _ *clock) {
			ctx, err := s.BeginTX(t.Context())
			require.NoError(t, err)
			require.NoError(t, s.CreateUser(ctx, &storage.User{Email: "tx@example.com"}))
			require.NoError(t, s.Rollback(ctx))
			assert.False(t, userExists(t, s, "tx@example.com"))
			assert.NoError(t, s.Rollback(ctx), "rolling back an ended transaction is not an error")
		}},
		{"TestTransactional_CommitWithoutTransactionFails", func(t *testing.T, s *storage.Store, _ *clock) {
			assert.Error(t, s.Commit(t.Context()))
			assert.Error(t, s.Rollback(t.Context()))
		}},
		{"TestTransactional_NestedBeginIsASavepoint", func(t *testing.T, s *storage.Store, _ *clock) {
			outer, err := s.BeginTX(t.Context())
			require.NoError(t, err)
			require.NoError(t, s.CreateUser(outer, &storage.User{Email: "a@example.com"}))
			inner, err := s.BeginTX(outer)
			require.NoError(t, err)
			require.NoError(t, s.CreateUser(inner, &storage.User{Email: "b@example.com"}))
			require.NoError(t, s.Rollback(inner))
			inner, err = s.BeginTX(outer)
			require.NoError(t, err)
			require.NoError(t, s.CreateUser(inner, &storage.User{Email: "c@example.com"}))
			require.NoError(t, s.Commit(inner))
			require.NoError(t, s.Commit(outer))
			assert.True(t, userExists(t, s, "a@example.com"))
			assert.False(t, userExists(t, s, "b@example.com"))
			assert.True(t, userExists(t, s, "c@example.com"))
		}},
		{"TestTransactional_FositeFlowRollsBackTogether", func(t *testing.T, s *storage.Store, clk *clock) {
			r := newTestRequest(clk, newTestClient(t, s, "rp"), "alice")
			require.NoError(t, s.CreateAuthorizeCodeSession(t.Context(), "code-sig", r))
			ctx, err := s.BeginTX(t.Context())
			require.NoError(t, err)
			require.NoError(t, s.InvalidateAuthorizeCodeSession(ctx, "code-sig"))
			require.NoError(t, s.CreateAccessTokenSession(ctx, "at-sig", r))
			require.NoError(t, s.Rollback(ctx))

			_, err = s.GetAuthorizeCodeSession(t.Context(), "code-sig", nil)
			assert.NoError(t, err, "the code is active again after the rollback")
			_, err = s.GetAccessTokenSession(t.Context(), "at-sig", nil)
			requireNotFound(t, err)
		}},
		{"TestInTx_CommitsOnNil", func(t *testing.T, s *storage.Store, _ *clock) {
			err := s.InTx(t.Context(), func(ctx context.Context) error {
				return s.CreateUser(ctx, &storage.User{Email: "intx@example.com"})
			})
			require.NoError(t, err)
			assert.True(t, userExists(t, s, "intx@example.com"))
		}},
		{"TestInTx_RollsBackOnErrorAndPanic", func(t *testing.T, s *storage.Store, _ *clock) {
			err := s.InTx(t.Context(), func(ctx context.Context) error {
				require.NoError(t, s.CreateUser(ctx, &storage.User{Email: "err@example.com"}))
				return errBoom
			})
			assert.ErrorIs(t, err, errBoom)
			assert.False(t, userExists(t, s, "err@example.com"))

			assert.PanicsWithValue(t, "boom", func() {
				_ = s.InTx(t.Context(), func(ctx context.Context) error {
					require.NoError(t, s.CreateUser(ctx, &storage.User{Email: "panic@example.com"}))
					panic("boom")
				})
			})
			assert.False(t, userExists(t, s, "panic@example.com"))
		}},
		{"TestInTx_ReusesTheOuterTransaction", func(t *testing.T, s *storage.Store, _ *clock) {
			outer, err := s.BeginTX(t.Context())
			require.NoError(t, err)
			require.NoError(t, s.InTx(outer, func(ctx context.Context) error {
				return s.CreateUser(ctx, &storage.User{Email: "inner@example.com"})
			}))
			require.NoError(t, s.Rollback(outer))
			assert.False(t, userExists(t, s, "inner@example.com"), "InTx inside a transaction must not commit it")
		}},
		{"TestInTx_ConcurrentReadWriteTransactionsDoNotDeadlock", func(t *testing.T, s *storage.Store, _ *clock) {
			// Read-then-write transactions from many goroutines: the pattern that
			// deadlocks SQLite with deferred transactions.
			u := &storage.User{Email: "shared@example.com"}
			require.NoError(t, s.CreateUser(t.Context(), u))
			const workers, rounds = 8, 10
			var wg sync.WaitGroup
			errs := make(chan error, workers*rounds)
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range rounds {
						errs <- s.InTx(t.Context(), func(ctx context.Context) error {
							if _, err := s.GetUser(ctx, u.ID); err != nil {
								return err
							}
							if err := s.SetUserDisabled(ctx, u.ID, i%2 == 0); err != nil {
								return err
							}
							return s.AddAuditEvent(ctx, &storage.AuditEvent{Type: "test", UserID: u.ID,
								Detail: map[string]any{"worker": fmt.Sprint(w), "round": fmt.Sprint(i)}})
						})
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				assert.NoError(t, err)
			}
			events, err := s.ListAuditEvents(t.Context(), u.ID, 1000)
			require.NoError(t, err)
			assert.Len(t, events, workers*rounds)
		}},
		{"TestErrors_ClosedStoreIsUnavailable", func(t *testing.T, s *storage.Store, _ *clock) {
			u := &storage.User{Email: "closed@example.com"}
			require.NoError(t, s.CreateUser(t.Context(), u))
			require.NoError(t, s.Close())
			assert.ErrorIs(t, s.Ping(t.Context()), storage.ErrUnavailable)
			_, err := s.GetUser(t.Context(), u.ID)
			assert.ErrorIs(t, err, storage.ErrUnavailable)
			assert.NotErrorIs(t, err, storage.ErrNotFound)
			assert.ErrorIs(t, s.CreateUser(t.Context(), &storage.User{Email: "x@example.com"}), storage.ErrUnavailable)
			_, err = s.BeginTX(t.Context())
			assert.ErrorIs(t, err, storage.ErrUnavailable)
		}},
		{"TestErrors_StatementErrorsAreNotUnavailable", func(t *testing.T, s *storage.Store, _ *clock) {
			_, err := s.GetUser(t.Context(), "missing")
			assert.NotErrorIs(t, err, storage.ErrUnavailable)
			require.NoError(t, s.CreateUser(t.Context(), &storage.User{Email: "dup@example.com"}))
			err = s.CreateUser(t.Context(), &storage.User{Email: "dup@example.com"})
			assert.ErrorIs(t, err, storage.ErrAlreadyExists)
			assert.NotErrorIs(t, err, storage.ErrUnavailable)
		}},
		{"TestErrors_PostgresDeadlockIsSerializationFailure", func(t *testing.T, s *storage.Store, _ *clock) {
			if s.Dialect() != storage.DialectPostgres {
				t.Skip("SQLite transactions take the write lock at BEGIN and cannot deadlock")
			}
			a, b := &storage.User{Email: "a@example.com"}, &storage.User{Email: "b@example.com"}
			require.NoError(t, s.CreateUser(t.Context(), a))
			require.NoError(t, s.CreateUser(t.Context(), b))
			tx1, err := s.BeginTX(t.Context())
			require.NoError(t, err)
			tx2, err := s.BeginTX(t.Context())
			require.NoError(t, err)
			require.NoError(t, s.SetUserDisabled(tx1, a.ID, true))
			require.NoError(t, s.SetUserDisabled(tx2, b.ID, true))

			// Each now wants the other's row: PostgreSQL aborts one of them.
			var wg sync.WaitGroup
			errs := make([]error, 2)
			for i, step := range []struct {
				ctx context.Context
				id  string
			}{{tx1, b.ID}, {tx2, a.ID}} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if errs[i] = s.SetUserDisabled(step.ctx, step.id, true); errs[i] != nil {
						_ = s.Rollback(step.ctx) // release the locks so the other proceeds
					}
				}()
			}
			wg.Wait()
			_ = s.Rollback(tx1)
			_ = s.Rollback(tx2)
			failures := 0
			for _, err := range errs {
				if err != nil {
					failures++
					assert.ErrorIs(t, err, fosite.ErrSerializationFailure)
				}
			}
			assert.Equal(t, 1, failures, "exactly one transaction is the deadlock victim: %v", errs)
		}},
	}
}
