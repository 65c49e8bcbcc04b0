package outbox

import (
	"log/slog"
	"time"
)

// Defaults for the zero values of Options.
const (
	DefaultBatch = 20
	// DefaultLease is short so that the rows of an instance that died are
	// claimed by another within seconds; a live sender extends it while it
	// works (see Options.Lease).
	DefaultLease        = 10 * time.Second
	DefaultSenders      = 4
	DefaultPollInterval = time.Second
	DefaultLinger       = 20 * time.Millisecond
	DefaultMaxAttempts  = 20
	// DefaultBackoffBase and DefaultBackoffMax shape DefaultBackoff.
	DefaultBackoffBase = 2 * time.Second
	DefaultBackoffMax  = 10 * time.Minute
)

// Options tunes a Dispatcher. Zero values take the defaults above.
type Options struct {
	// Clock tells the time for backoff and lease bookkeeping (time.Now when nil).
	Clock func() time.Time
	// Logger receives delivery failures and drops (slog.Default() when nil). It
	// never receives a payload: no code, no body, no subject.
	Logger *slog.Logger
	// Batch is how many rows one claim takes.
	Batch int
	// Lease is how long claimed rows stay invisible to other instances. While
	// a batch is being worked on, its lease is extended every Lease/3 (a
	// heartbeat, when the store is a LeaseStore), so a slow send keeps its
	// rows and only the rows of a dead instance wait, at most Lease, for
	// another. The dispatcher starts no send with less than half of the lease
	// left (the heartbeat failing, or none) and releases the rest of the
	// batch.
	Lease time.Duration
	// Senders is how many batches Run works on at once, each claimed by its
	// own sender (mail.smtp_max_connections: one SMTP connection each).
	Senders int
	// Observer is told of each delivery, failed attempt and drop of an
	// expired mail (nil: no one).
	Observer Observer
	// PollInterval is how long Run waits after a claim that found nothing,
	// unless Notify wakes it first.
	PollInterval time.Duration
	// Linger is how long Run waits, once woken by Notify or after a claim
	// that found rows but not a full batch, before it claims again, so that
	// mail enqueued meanwhile goes in the same claim: under load one claim
	// and one delete per Batch messages instead of per message or two. It
	// delays each mail by at most Linger.
	Linger time.Duration
	// MaxAttempts is how many times a message is tried before it is dropped.
	MaxAttempts int
	// MaxAge drops a message not delivered this long after it was queued
	// (0: no limit). otpstep sets it to otp.ttl: a code is useless once expired.
	MaxAge time.Duration
	// Backoff is the wait after failed attempt number attempt (1 for the first)
	// before the message may be claimed again (DefaultBackoff when nil).
	Backoff func(attempt int) time.Duration
}

// Observer learns the outcome of each delivery attempt, as the dispatcher
// decides it (otpstep's metrics).
type Observer interface {
	// Delivered: the mail server accepted at at a mail queued at queuedAt.
	Delivered(queuedAt, at time.Time)
	// DeliveryFailed: an attempt failed; class is mail.FailureClass's.
	DeliveryFailed(class string)
	// DroppedExpired: a mail was dropped unsent, queued longer than MaxAge
	// (its code is dead).
	DroppedExpired()
}

// withDefaults fills the zero values of o.
func (o Options) withDefaults() Options {
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Batch <= 0 {
		o.Batch = DefaultBatch
	}
	if o.Lease <= 0 {
		o.Lease = DefaultLease
	}
	if o.Senders <= 0 {
		o.Senders = DefaultSenders
	}
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.Linger <= 0 {
		o.Linger = DefaultLinger
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.Backoff == nil {
		o.Backoff = DefaultBackoff
	}
	return o
}

// DefaultBackoff waits 2s after the first failed attempt and doubles the wait
// after each further one, up to 10 minutes, without jitter: the lease, not
// timing, keeps instances from sending twice, so there is no thundering herd
// to spread. With the default 20 attempts a message is given up after about
// two hours.
func DefaultBackoff(attempt int) time.Duration {
	return ExponentialBackoff(DefaultBackoffBase, DefaultBackoffMax, nil)(attempt)
}

// ExponentialBackoff returns a Backoff waiting base after attempt 1, doubling
// per attempt, capped at max. When jitter is not nil it must return a number
// in [0, 1) (for example math/rand/v2.Float64) and each wait d becomes
// d/2 + jitter()·d/2 ("equal jitter").
func ExponentialBackoff(base, max time.Duration, jitter func() float64) func(attempt int) time.Duration {
	return func(attempt int) time.Duration {
		d := base
		for i := 1; i < attempt && d < max; i++ {
			d *= 2
		}
		if d > max {
			d = max
		}
		if jitter != nil {
			half := d / 2
			d = half + time.Duration(jitter()*float64(d-half))
		}
		return d
	}
}
