package mail

import (
	"context"
	"log/slog"
)

// Log is the development Mailer: instead of sending, it writes each message
// (recipient, subject and text body, which contains the one-time code) to a
// logger at info level, so a developer reads the code in the server log.
// It must never be used in production: anyone who can read the log can sign in
// as any user. The configuration only allows it in development mode.
type Log struct {
	logger *slog.Logger
}

// NewLog returns a Log mailer writing to logger (slog.Default() when nil).
func NewLog(logger *slog.Logger) *Log {
	if logger == nil {
		logger = slog.Default()
	}
	return &Log{logger: logger}
}

// Send logs m at info level and never fails.
func (l *Log) Send(ctx context.Context, m Message) error {
	l.logger.InfoContext(ctx, "mail: not sent (log driver, development only)",
		slog.String("to", m.To),
		slog.String("subject", m.Subject),
		slog.String("text", m.Text),
	)
	return nil
}
