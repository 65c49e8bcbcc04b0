package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	netmail "net/mail"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	gomail "github.com/wneessen/go-mail"
	gosmtp "github.com/wneessen/go-mail/smtp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// TLS modes of SMTPConfig.TLS.
const (
	// TLSStartTLS connects in plain text and requires the server to upgrade the
	// connection with STARTTLS (RFC 3207) before anything else is sent; a server
	// that does not offer STARTTLS is an error. Default port 587.
	TLSStartTLS = "starttls"
	// TLSImplicit speaks TLS from the first byte (RFC 8314 §3.3, "smtps").
	// Default port 465.
	TLSImplicit = "tls"
	// TLSNone sends everything, credentials included, in plain text. Only for a
	// relay on the same machine or pod: with credentials it is refused unless
	// the host is a loopback address. Default port 25.
	TLSNone = "none"
)

// DefaultSMTPTimeout bounds connecting to the server and each SMTP command
// when SMTPConfig.Timeout is zero.
const DefaultSMTPTimeout = 15 * time.Second

// DefaultSMTPMaxConnections is SMTPConfig.MaxConnections when it is zero.
const DefaultSMTPMaxConnections = 4

// smtpIdleTimeout is how long an idle connection is kept for the next
// message. Servers close idle clients after a few minutes (RFC 5321
// §4.5.3.2.7 suggests 5); one closed earlier is found out before the message
// is sent, and the message goes over a new connection.
const smtpIdleTimeout = time.Minute

// SMTPConfig configures the SMTP mailer.
type SMTPConfig struct {
	// URL is smtp://[user:pass@]host[:port] or smtps://[user:pass@]host[:port].
	// With userinfo the mailer authenticates (SMTP AUTH, RFC 4954), choosing the
	// strongest mechanism the server offers (SCRAM, CRAM-MD5, PLAIN, LOGIN);
	// without it, it does not authenticate.
	URL string
	// TLS is starttls, tls or none (see TLSStartTLS, TLSImplicit, TLSNone).
	// Empty means tls for an smtps URL and starttls for an smtp URL; an smtps URL
	// with another mode is an error.
	TLS string
	// From is the sender, an RFC 5322 address ("otpstep <no-reply@example.com>").
	From string
	// Timeout bounds connecting and each SMTP command (DefaultSMTPTimeout when 0).
	Timeout time.Duration
	// TLSConfig, when set, replaces the default TLS client configuration (TLS 1.2
	// or later, server name = URL host). Tests use it to trust a self-signed
	// certificate; ServerName is filled in from the URL when empty.
	TLSConfig *tls.Config
	// Clock stamps the Date header (time.Now when nil).
	Clock func() time.Time
	// MaxConnections bounds the connections open at once
	// (mail.smtp_max_connections; DefaultSMTPMaxConnections when 0). Each
	// carries one message at a time; Send waits for a free one.
	MaxConnections int
	// TracerProvider records a span per Send, a child of the span in Send's
	// context (nil: none).
	TracerProvider trace.TracerProvider
}

// SMTP is the production Mailer, through github.com/wneessen/go-mail. It
// keeps up to MaxConnections connections open and sends message after
// message over each, so that a message costs its transaction (MAIL, RCPT,
// DATA), not a connection, a TLS handshake and an authentication. A
// connection that fails is closed; a message that did not get as far as its
// content (the connection had dropped while idle, say) is sent again at once
// over a new one, so a server hanging up between messages costs no retry
// and no duplicate. It is safe for concurrent use.
type SMTP struct {
	host      string
	port      int
	mode      string
	username  string
	password  string
	from      string
	timeout   time.Duration
	tlsConfig *tls.Config
	clock     func() time.Time
	tracer    trace.Tracer

	client *gomail.Client    // configured once; each connection is its own *gosmtp.Client
	slots  chan struct{}     // one per connection open or being opened
	mu     sync.Mutex        // guards idle
	idle   []*smtpConnection // open, not carrying a message, newest last
}

// smtpConnection is one open connection and when it last carried a message.
type smtpConnection struct {
	c        *gosmtp.Client
	lastUsed time.Time
}

var _ Mailer = (*SMTP)(nil)

// NewSMTP validates cfg and returns an SMTP mailer. It does not connect.
// Errors never contain the password.
func NewSMTP(cfg SMTPConfig) (*SMTP, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		// url.Parse quotes the whole URL, password included: do not wrap it.
		return nil, errors.New("mail: smtp url is not a valid URL")
	}
	if u.Scheme != "smtp" && u.Scheme != "smtps" {
		return nil, fmt.Errorf("mail: smtp url scheme %q is not smtp or smtps", u.Scheme)
	}
	s := &SMTP{host: u.Hostname(), timeout: cfg.Timeout, clock: cfg.Clock}
	tp := cfg.TracerProvider
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	s.tracer = tp.Tracer("github.com/otpstep/otpstep/provider/mail")
	if s.host == "" {
		return nil, errors.New("mail: smtp url has no host")
	}
	if s.mode, err = smtpMode(u.Scheme, cfg.TLS); err != nil {
		return nil, err
	}
	if s.port, err = smtpPort(u.Port(), s.mode); err != nil {
		return nil, err
	}
	if u.User != nil {
		s.username = u.User.Username()
		s.password, _ = u.User.Password()
		if s.username == "" {
			return nil, errors.New("mail: smtp url has credentials but no user name")
		}
		if s.mode == TLSNone && !isLoopback(s.host) {
			return nil, fmt.Errorf("mail: smtp tls=none would send the password for %s in plain text; use starttls or tls, or a relay on a loopback address", s.host)
		}
	}
	if _, err := netmail.ParseAddress(cfg.From); err != nil {
		return nil, fmt.Errorf("mail: from %q is not an email address: %w", cfg.From, err)
	}
	s.from = cfg.From
	if s.timeout <= 0 {
		s.timeout = DefaultSMTPTimeout
	}
	if cfg.TLSConfig != nil {
		s.tlsConfig = cfg.TLSConfig.Clone()
	} else {
		s.tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if s.tlsConfig.ServerName == "" {
		s.tlsConfig.ServerName = s.host
	}
	if s.clock == nil {
		s.clock = time.Now
	}
	n := cfg.MaxConnections
	if n <= 0 {
		n = DefaultSMTPMaxConnections
	}
	s.slots = make(chan struct{}, n)
	if s.client, err = gomail.NewClient(s.host, s.clientOptions()...); err != nil {
		return nil, fmt.Errorf("mail: smtp client for %s: %w", s.addr(), err)
	}
	return s, nil
}

// smtpMode resolves the TLS mode from the URL scheme and the configured mode.
func smtpMode(scheme, mode string) (string, error) {
	mode = strings.ToLower(strings.TrimSpace(mode))
	if mode == "" {
		if scheme == "smtps" {
			return TLSImplicit, nil
		}
		return TLSStartTLS, nil
	}
	switch mode {
	case TLSStartTLS, TLSImplicit, TLSNone:
	default:
		return "", fmt.Errorf("mail: smtp tls mode %q is not starttls, tls or none", mode)
	}
	if scheme == "smtps" && mode != TLSImplicit {
		return "", fmt.Errorf("mail: an smtps url is implicit TLS, it cannot use tls mode %q", mode)
	}
	return mode, nil
}

// smtpPort returns the URL's port or the mode's conventional one.
func smtpPort(port, mode string) (int, error) {
	if port == "" {
		switch mode {
		case TLSImplicit:
			return gomail.DefaultPortSSL, nil
		case TLSStartTLS:
			return gomail.DefaultPortTLS, nil
		default:
			return gomail.DefaultPort, nil
		}
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("mail: smtp port %q is not 1..65535", port)
	}
	return n, nil
}

// isLoopback reports whether host names this machine.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Send delivers m over an open connection, or a new one when none is idle
// and fewer than MaxConnections are open; otherwise it waits for one (or ctx).
// Permanent failures (see IsPermanent) are marked so; the error names the
// server, never the password or the body.
//
// Send reports an error only when the server has not accepted the message.
// One case is unknowable: the connection breaks after the message's last
// line was sent and before the server's reply came. Send reports that as a
// temporary failure and the message is sent again later — if the server had
// in fact accepted it, twice.
func (s *SMTP) Send(ctx context.Context, m Message) (err error) {
	ctx, span := s.tracer.Start(ctx, "smtp send", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("server.address", s.host), attribute.Int("server.port", s.port)))
	defer func() {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
			span.SetAttributes(attribute.Bool("smtp.permanent_failure", IsPermanent(err)))
		}
		span.End()
	}()
	msg, err := s.build(m)
	if err != nil {
		return Permanent(err)
	}
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("mail: smtp send via %s: waiting for a connection: %w", s.addr(), ctx.Err())
	}
	defer func() { <-s.slots }()

	conn, reused := s.takeIdle(), true
	if conn == nil {
		if conn, err = s.dial(ctx); err != nil {
			return err
		}
		reused = false
	}
	err = s.client.SendWithSMTPClient(conn.c, msg)
	if err != nil && !msg.IsDelivered() && reused && notTransmitted(err) {
		// The connection had gone stale while idle, before this message
		// was handed over: send it on a new one.
		s.hangUp(conn)
		if conn, err = s.dial(ctx); err != nil {
			return err
		}
		err = s.client.SendWithSMTPClient(conn.c, msg)
	}
	if msg.IsDelivered() {
		// The server accepted the message; whatever failed after (the RSET
		// that readies the connection) is no reason to send it again.
		if err != nil {
			s.hangUp(conn)
		} else {
			s.putIdle(conn)
		}
		return nil
	}
	if err != nil {
		s.hangUp(conn)
		err = fmt.Errorf("mail: smtp send via %s: %w", s.addr(), err)
		if isPermanentSMTP(err) {
			return Permanent(err)
		}
		return err
	}
	s.putIdle(conn)
	return nil
}

// notTransmitted reports whether err is a connection failure (not a reply
// from the server) before the end of the message's data: the server cannot
// have accepted the message, and a new connection may carry it.
func notTransmitted(err error) bool {
	var se *gomail.SendError
	if !errors.As(err, &se) {
		return false
	}
	switch se.Reason {
	case gomail.ErrConnCheck, gomail.ErrSMTPMailFrom, gomail.ErrSMTPRcptTo, gomail.ErrSMTPData, gomail.ErrWriteContent:
		// 421: the server is closing the connection (RFC 5321 §3.8).
		code := se.ErrorCode()
		return code == 0 || code == 421
	}
	return false
}

// dial opens a connection: TCP, greeting, EHLO, STARTTLS or TLS, AUTH.
func (s *SMTP) dial(ctx context.Context) (*smtpConnection, error) {
	c, err := s.client.DialToSMTPClientWithContext(ctx)
	if err != nil {
		return nil, &connectError{fmt.Errorf("mail: smtp connect to %s: %w", s.addr(), err)}
	}
	return &smtpConnection{c: c}, nil
}

// takeIdle returns the most recently used idle connection, or nil when none
// is idle; those idle longer than smtpIdleTimeout are closed on the way.
func (s *SMTP) takeIdle() *smtpConnection {
	now := s.clock()
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.idle) > 0 {
		c := s.idle[len(s.idle)-1]
		s.idle = s.idle[:len(s.idle)-1]
		if now.Sub(c.lastUsed) < smtpIdleTimeout {
			return c
		}
		go s.hangUp(c)
	}
	return nil
}

func (s *SMTP) putIdle(c *smtpConnection) {
	c.lastUsed = s.clock()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.idle = append(s.idle, c)
}

// hangUp says QUIT, briefly, and closes the connection.
func (s *SMTP) hangUp(c *smtpConnection) {
	_ = c.c.UpdateDeadline(time.Second)
	_ = c.c.Quit()
	_ = c.c.Close()
}

// Close closes the idle connections. Send may still be called after it (it
// opens new ones).
func (s *SMTP) Close() error {
	s.mu.Lock()
	idle := s.idle
	s.idle = nil
	s.mu.Unlock()
	for _, c := range idle {
		s.hangUp(c)
	}
	return nil
}

func (s *SMTP) addr() string {
	return net.JoinHostPort(s.host, strconv.Itoa(s.port))
}

// clientOptions configures the go-mail client every connection is opened with.
func (s *SMTP) clientOptions() []gomail.Option {
	opts := []gomail.Option{
		gomail.WithPort(s.port),
		gomail.WithTimeout(s.timeout),
		gomail.WithTLSConfig(s.tlsConfig),
		// Neither a NOOP before nor a RSET after each message: a completed
		// transaction leaves the session ready for the next (RFC 5321
		// §4.1.1.4), and a connection that dropped while idle fails at
		// MAIL FROM, before the message is handed over (see Send).
		gomail.WithoutNoop(),
		gomail.WithoutRset(),
	}
	switch s.mode {
	case TLSImplicit:
		opts = append(opts, gomail.WithSSL(), gomail.WithTLSPolicy(gomail.NoTLS))
	case TLSStartTLS:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	default:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	}
	if s.username == "" {
		return opts
	}
	opts = append(opts, gomail.WithUsername(s.username), gomail.WithPassword(s.password))
	if s.mode == TLSNone {
		// NewSMTP allowed plain-text credentials only towards a loopback relay;
		// go-mail refuses PLAIN and LOGIN without TLS unless told otherwise.
		return append(opts, gomail.WithOpportunisticSMTPAuth(gomail.SMTPAuthPlainNoEnc, gomail.SMTPAuthLoginNoEnc))
	}
	return append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover))
}

// build turns m into a go-mail message; its errors are the message's fault.
func (s *SMTP) build(m Message) (*gomail.Msg, error) {
	if strings.ContainsAny(m.To, "\r\n") || strings.ContainsAny(m.Subject, "\r\n") {
		return nil, errors.New("mail: recipient or subject contains a line break")
	}
	if m.Text == "" && m.HTML == "" {
		return nil, errors.New("mail: message has no body")
	}
	msg := gomail.NewMsg()
	if err := msg.From(s.from); err != nil {
		return nil, fmt.Errorf("mail: from: %w", err)
	}
	if err := msg.To(m.To); err != nil {
		return nil, fmt.Errorf("mail: recipient is not an email address: %w", err)
	}
	msg.Subject(m.Subject)
	msg.SetDateWithValue(s.clock())
	msg.SetMessageID()
	switch {
	case m.Text != "" && m.HTML != "":
		msg.SetBodyString(gomail.TypeTextPlain, m.Text)
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	case m.Text != "":
		msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	default:
		msg.SetBodyString(gomail.TypeTextHTML, m.HTML)
	}
	return msg, nil
}
