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
	"time"

	gomail "github.com/wneessen/go-mail"
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
}

// SMTP is the production Mailer: it delivers each message over a fresh SMTP
// connection through github.com/wneessen/go-mail. It is safe for concurrent use.
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

// Send delivers m over a new connection. Permanent failures (see IsPermanent)
// are marked so; the error names the server, never the password or the body.
func (s *SMTP) Send(ctx context.Context, m Message) error {
	msg, err := s.build(m)
	if err != nil {
		return Permanent(err)
	}
	client, err := gomail.NewClient(s.host, s.clientOptions()...)
	if err != nil {
		return fmt.Errorf("mail: smtp client for %s: %w", s.addr(), err)
	}
	err = client.DialAndSendWithContext(ctx, msg)
	if err != nil && msg.IsDelivered() {
		// The server accepted the message; only QUIT failed. Reporting an error
		// here would make the outbox send the code twice.
		return nil
	}
	if err != nil {
		err = fmt.Errorf("mail: smtp send via %s: %w", s.addr(), err)
		if isPermanentSMTP(err) {
			return Permanent(err)
		}
		return err
	}
	return nil
}

func (s *SMTP) addr() string {
	return net.JoinHostPort(s.host, strconv.Itoa(s.port))
}

// clientOptions configures a go-mail client for one delivery.
func (s *SMTP) clientOptions() []gomail.Option {
	opts := []gomail.Option{
		gomail.WithPort(s.port),
		gomail.WithTimeout(s.timeout),
		gomail.WithTLSConfig(s.tlsConfig),
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
