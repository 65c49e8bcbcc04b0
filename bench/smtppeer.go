package main

import (
	"errors"
	"io"
	"log"
	"net"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

// smtpPeer is the SMTP server the in-process otpstep delivers to: on
// loopback, accepting every message, recording when it accepted each (and
// the recipient and code it carried, for the delivery latency). It keeps
// nothing else, so that it is not the bottleneck (outbox_drain measures it
// alone first).
type smtpPeer struct {
	srv  *smtp.Server
	addr string

	accepted atomic.Int64
	conns    atomic.Int64

	mu          sync.Mutex
	first, last time.Time                           // of the current window (resetWindow)
	windowN     int                                 // accepted in the window
	onAccept    func(to, code string, at time.Time) // nil: none
}

func startSMTPPeer() (*smtpPeer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &smtpPeer{addr: ln.Addr().String()}
	p.srv = smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		p.conns.Add(1)
		return &peerSession{peer: p}, nil
	}))
	p.srv.Domain = "bench.localhost"
	p.srv.AllowInsecureAuth = true
	p.srv.ReadTimeout = time.Minute
	p.srv.WriteTimeout = time.Minute
	p.srv.ErrorLog = log.New(io.Discard, "", 0)
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

func (p *smtpPeer) url() string { return "smtp://" + p.addr }

func (p *smtpPeer) close() { _ = p.srv.Close() }

// resetWindow starts counting acceptances afresh (window reports them).
func (p *smtpPeer) resetWindow() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.first, p.last, p.windowN = time.Time{}, time.Time{}, 0
}

// window is how many messages were accepted since resetWindow, and the
// time from the first to the last of them.
func (p *smtpPeer) window() (n int, span time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.windowN, p.last.Sub(p.first)
}

// setOnAccept installs (nil: removes) the hook called for every accepted
// message with its recipient and the code found in its text.
func (p *smtpPeer) setOnAccept(f func(to, code string, at time.Time)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.onAccept = f
}

// codeLine is the built-in OTP template's line with the code (four spaces,
// the digits), as it stands in the quoted-printable text part.
var codeLine = regexp.MustCompile(`\n    ([0-9]{6,10})\r?\n`)

func (p *smtpPeer) accept(to string, data []byte) {
	at := time.Now()
	p.accepted.Add(1)
	p.mu.Lock()
	if p.windowN == 0 {
		p.first = at
	}
	p.last = at
	p.windowN++
	hook := p.onAccept
	p.mu.Unlock()
	if hook != nil {
		if m := codeLine.FindSubmatch(data); m != nil {
			hook(to, string(m[1]), at)
		}
	}
}

type peerSession struct {
	peer *smtpPeer
	to   string
}

func (s *peerSession) Mail(string, *smtp.MailOptions) error { return nil }

func (s *peerSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if s.to != "" {
		return errors.New("bench peer: one recipient per message")
	}
	s.to = to
	return nil
}

func (s *peerSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.peer.accept(s.to, data)
	return nil
}

func (s *peerSession) Reset()        { s.to = "" }
func (s *peerSession) Logout() error { return nil }
