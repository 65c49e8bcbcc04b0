package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	fositestorage "github.com/ory/fosite/storage"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"gorm.io/gorm"
)

var _ fositestorage.Transactional = (*Store)(nil)

// txKey keys the transaction in a context. It carries the pool, so a
// transaction of one Store is never picked up by another Store's methods.
type txKey struct{ pool *gorm.DB }

// txState is the transaction a context carries. A BeginTX inside a transaction
// opens a savepoint; savepoint is then its name.
type txState struct {
	db        *gorm.DB
	savepoint string
	depth     int
	// cancel releases the transaction's bound (Options.QueryTimeout): past
	// it, database/sql rolls the transaction back.
	cancel context.CancelFunc
	// span is the transaction's (nil: not traced), ended by Commit or
	// Rollback; savepoints have none of their own.
	span trace.Span
}

func (s *Store) txFrom(ctx context.Context) *txState {
	tx, _ := ctx.Value(txKey{s.gdb}).(*txState)
	return tx
}

// BeginTX starts a transaction and returns a context carrying it; every Store
// method called with that context (or one derived from it) runs inside it,
// until Commit or Rollback. Called with a context that already carries a
// transaction, it opens a savepoint in it instead, which Commit releases and
// Rollback rolls back to. It implements fosite's storage.Transactional.
func (s *Store) BeginTX(ctx context.Context) (context.Context, error) {
	if outer := s.txFrom(ctx); outer != nil {
		sp := &txState{db: outer.db, depth: outer.depth + 1}
		sp.savepoint = fmt.Sprintf("otpstep_sp%d", sp.depth)
		if _, err := s.exec(ctx, "SAVEPOINT "+sp.savepoint); err != nil {
			return ctx, fmt.Errorf("storage: begin savepoint: %w", err)
		}
		return context.WithValue(ctx, txKey{s.gdb}, sp), nil
	}
	spanCtx, span := s.startSpan(ctx, "db transaction")
	bctx, cancel := s.bound(spanCtx)
	tx := s.gdb.WithContext(bctx).Begin()
	if tx.Error != nil {
		cancel()
		err := fmt.Errorf("storage: begin transaction: %w", classify(s.note(ctx, bctx, tx.Error)))
		endSpan(span, err)
		return ctx, err
	}
	return context.WithValue(bctx, txKey{s.gdb}, &txState{db: tx, cancel: cancel, span: span}), nil
}

// Commit commits the transaction (or releases the savepoint) that ctx carries.
func (s *Store) Commit(ctx context.Context) error {
	tx := s.txFrom(ctx)
	if tx == nil {
		return errors.New("storage: commit: no transaction in context")
	}
	if tx.savepoint != "" {
		if _, err := s.exec(ctx, "RELEASE SAVEPOINT "+tx.savepoint); err != nil {
			return fmt.Errorf("storage: release savepoint: %w", err)
		}
		return nil
	}
	defer tx.cancel()
	if err := committer(tx).Commit(); err != nil {
		err = fmt.Errorf("storage: commit: %w", classify(s.note(ctx, ctx, err)))
		endSpan(tx.span, err)
		return err
	}
	endSpan(tx.span, nil)
	return nil
}

// Rollback rolls back the transaction (or to the savepoint) that ctx carries.
// Rolling back a transaction that already ended is not an error.
func (s *Store) Rollback(ctx context.Context) error {
	tx := s.txFrom(ctx)
	if tx == nil {
		return errors.New("storage: rollback: no transaction in context")
	}
	if tx.savepoint != "" {
		if _, err := s.exec(ctx, "ROLLBACK TO SAVEPOINT "+tx.savepoint); err != nil {
			return fmt.Errorf("storage: rollback to savepoint: %w", err)
		}
		return nil
	}
	defer tx.cancel()
	err := committer(tx).Rollback()
	if tx.span != nil && !errors.Is(err, sql.ErrTxDone) { // not yet ended by a Commit
		tx.span.SetAttributes(attribute.Bool("db.rolled_back", true))
		endSpan(tx.span, err)
	}
	if err != nil && !errors.Is(err, sql.ErrTxDone) {
		return fmt.Errorf("storage: rollback: %w", err)
	}
	return nil
}

// InTx runs fn in a transaction: committed when fn returns nil, rolled back
// when it returns an error or panics. When ctx already carries a transaction,
// fn runs in it and the outer owner decides about commit. fn runs once; a
// fosite.ErrSerializationFailure is returned to the caller, not retried.
//
// Isolation is the database default: READ COMMITTED on PostgreSQL (a read
// followed by a write is not protected against a concurrent writer; use one
// conditional statement, as the methods of Store do), serializable on SQLite
// (a transaction holds the write lock from BEGIN).
func (s *Store) InTx(ctx context.Context, fn func(ctx context.Context) error) error {
	if s.txFrom(ctx) != nil {
		return fn(ctx)
	}
	txCtx, err := s.BeginTX(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if p := recover(); p != nil {
			_ = s.Rollback(txCtx)
			panic(p)
		}
	}()
	if err := fn(txCtx); err != nil {
		if rbErr := s.Rollback(txCtx); rbErr != nil {
			return errors.Join(err, rbErr)
		}
		return err
	}
	return s.Commit(txCtx)
}

// committer is the transaction under gorm. Commit and Rollback go to it
// directly: gorm.DB keeps errors sticky, so a failed Commit would make a later
// successful Rollback look failed.
func committer(tx *txState) gorm.TxCommitter {
	c, ok := tx.db.Statement.ConnPool.(gorm.TxCommitter)
	if !ok {
		return badTx{}
	}
	return c
}

type badTx struct{}

func (badTx) Commit() error   { return gorm.ErrInvalidTransaction }
func (badTx) Rollback() error { return gorm.ErrInvalidTransaction }
