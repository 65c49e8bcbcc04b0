package outbox

import (
	"context"
	"time"

	"github.com/otpstep/otpstep/storage"
)

// Row is one queued message as the store keeps it.
type Row = storage.OutboxMessage

// Store is the part of the database the Dispatcher needs.
type Store interface {
	// ClaimOutbox atomically claims up to limit rows whose AvailableAt is not
	// after now, sets their AvailableAt to now+lease so no other instance
	// claims them while this one works, increments their Attempts, and returns
	// them with the incremented count. Rows claimed by one call are never
	// returned by another before the lease runs out (PostgreSQL: SELECT … FOR
	// UPDATE SKIP LOCKED inside the claiming transaction).
	ClaimOutbox(ctx context.Context, limit int, lease time.Duration) ([]Row, error)
	// DeleteOutboxMessage removes a row, its payload with it. Deleting a row
	// that no longer exists is not an error.
	DeleteOutboxMessage(ctx context.Context, id string) error
	// RescheduleOutboxMessage makes a row claimable again from availableAt and
	// records why the attempt failed.
	RescheduleOutboxMessage(ctx context.Context, id string, availableAt time.Time, lastError string) error
}
