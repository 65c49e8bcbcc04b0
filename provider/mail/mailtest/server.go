package mailtest

import (
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// Option configures StartServer.
type Option func(*options)

type options struct {
	username, password string
	implicitTLS        bool
	startTLS           bool
}

// WithAuth makes the server offer AUTH PLAIN and refuse MAIL FROM (502)
// until a client authenticates with username and password. Without TLS the
// server allows AUTH in plain text, as a loopback relay would.
func WithAuth(username, password string) Option {
	return func(o *options) { o.username, o.password = username, password }
}

// WithImplicitTLS makes the server speak TLS from the first byte (smtps) with
// a self-signed certificate for 127.0.0.1 and localhost; see ClientTLSConfig.
func WithImplicitTLS() Option {
	return func(o *options) { o.implicitTLS, o.startTLS = true, false }
}

// WithStartTLS makes the server offer STARTTLS with a self-signed certificate
// for 127.0.0.1 and localhost; see ClientTLSConfig.
func WithStartTLS() Option {
	return func(o *options) { o.startTLS, o.implicitTLS = true, false }
}

// Server is an in-process SMTP server on 127.0.0.1 that records every message
// it accepts. Its methods are safe for concurrent use.
type Server struct {
	tb        testing.TB
	opts      options
	addr      string
	serverTLS *tls.Config
	clientTLS *tls.Config

	mu       sync.Mutex
	srv      *smtp.Server
	listener net.Listener
	served   chan struct{} // closed when the current Serve returns
	failCode int
	delay    time.Duration // before answering the end of DATA
	drop     int           // close a connection after it carried this many messages (0: never)
	conns    int           // connections accepted so far
	msgs     []Message
	arrived  chan struct{} // closed and replaced whenever a message arrives
}

// StartServer starts a server on a free port of 127.0.0.1 and stops it when
// the test ends. It accepts mail until SetFailing or Down say otherwise.
func StartServer(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	s := &Server{tb: tb, arrived: make(chan struct{})}
	for _, o := range opts {
		o(&s.opts)
	}
	if s.opts.implicitTLS || s.opts.startTLS {
		var err error
		if s.serverTLS, s.clientTLS, err = selfSignedTLS(); err != nil {
			tb.Fatalf("mailtest: %v", err)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("mailtest: listen: %v", err)
	}
	s.addr = l.Addr().String()
	s.serve(l)
	tb.Cleanup(s.Down)
	return s
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return s.addr }

// URL is the smtp:// (or, with WithImplicitTLS, smtps://) URL of the server,
// with the WithAuth credentials as userinfo.
func (s *Server) URL() string {
	u := url.URL{Scheme: "smtp", Host: s.addr}
	if s.opts.implicitTLS {
		u.Scheme = "smtps"
	}
	if s.opts.username != "" {
		u.User = url.UserPassword(s.opts.username, s.opts.password)
	}
	return u.String()
}

// ClientTLSConfig trusts the server's self-signed certificate (nil without
// TLS). Hand it to the client under test.
func (s *Server) ClientTLSConfig() *tls.Config {
	if s.clientTLS == nil {
		return nil
	}
	return s.clientTLS.Clone()
}

// Messages returns the messages accepted so far, oldest first.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// WaitMessages blocks until the server has accepted at least n messages and
// returns them, or fails the test after timeout. Call it from the test
// goroutine.
func (s *Server) WaitMessages(n int, timeout time.Duration) []Message {
	s.tb.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		msgs, arrived := append([]Message(nil), s.msgs...), s.arrived
		s.mu.Unlock()
		if len(msgs) >= n {
			return msgs
		}
		select {
		case <-arrived:
		case <-deadline.C:
			s.tb.Fatalf("mailtest: %d message(s) after %v, want %d", len(msgs), timeout, n)
			return nil
		}
	}
}

// SetFailing makes the server answer RCPT TO with code (for example 451 or
// 421, temporary; 550, permanent) until it is called with 0, which makes it
// accept mail again.
func (s *Server) SetFailing(code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failCode = code
}

// SetDelay makes the server wait d before it answers the end of each
// message's DATA (0: answer at once), as a slow or overloaded server does.
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// DropAfter makes the server close a connection, without a reply, when the
// client starts another transaction (MAIL FROM) on it after n accepted
// messages (0: never), as a server or a middlebox limiting connections does.
// Every message it accepted was answered 250 before the drop.
func (s *Server) DropAfter(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drop = n
}

// Connections is how many SMTP connections the server has accepted.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// Down closes the listener and every open connection, so clients get
// "connection refused". It does nothing when the server is already down.
func (s *Server) Down() {
	s.mu.Lock()
	srv, l, served := s.srv, s.listener, s.served
	s.srv, s.listener, s.served = nil, nil, nil
	s.mu.Unlock()
	if srv == nil {
		return
	}
	// Close the listener too: Serve may not have registered it with srv yet.
	_ = srv.Close()
	_ = l.Close()
	<-served
}

// Up starts the server again on the same port after Down. It does nothing
// when the server is already up.
func (s *Server) Up() {
	s.tb.Helper()
	s.mu.Lock()
	up := s.srv != nil
	s.mu.Unlock()
	if up {
		return
	}
	var l net.Listener
	var err error
	// The port was just released; give the kernel a moment if it is slow.
	for range 50 {
		if l, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		s.tb.Fatalf("mailtest: listen again on %s: %v", s.addr, err)
	}
	s.serve(l)
}

// serve runs a fresh go-smtp server (one cannot be restarted) on l.
func (s *Server) serve(l net.Listener) {
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		s.mu.Lock()
		s.conns++
		s.mu.Unlock()
		return &session{server: s, conn: c}, nil
	}))
	srv.Domain = "mailtest.localhost"
	srv.ReadTimeout = 30 * time.Second
	srv.WriteTimeout = 30 * time.Second
	srv.ErrorLog = log.New(io.Discard, "", 0)
	switch {
	case s.opts.implicitTLS:
		l = tls.NewListener(l, s.serverTLS)
	case s.opts.startTLS:
		srv.TLSConfig = s.serverTLS
	default:
		srv.AllowInsecureAuth = true
	}
	served := make(chan struct{})
	s.mu.Lock()
	s.srv, s.listener, s.served = srv, l, served
	s.mu.Unlock()
	go func() {
		defer close(served)
		if err := srv.Serve(l); err != nil && !errors.Is(err, net.ErrClosed) {
			s.tb.Errorf("mailtest: serve: %v", err)
		}
	}()
}

func (s *Server) failing() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failCode
}

func (s *Server) dataDelay() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.delay
}

func (s *Server) dropAfter() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.drop
}

func (s *Server) record(m Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, m)
	close(s.arrived)
	s.arrived = make(chan struct{})
}
