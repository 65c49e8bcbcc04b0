package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/smtp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/otpstep/otpstep/provider/mail"
)

// drainMails is how many mails outbox_drain queues (and sends to the peer
// alone first).
const drainMails = 20_000

// lingerAfterLoad is how long after put_session's load stops the bench waits
// before it counts the mails of the run not yet delivered.
const lingerAfterLoad = 5 * time.Second

// outboxDrain measures the SMTP peer alone (a bare net/smtp client sending
// one prepared message, over mail.smtp_max_connections connections), then
// otpstep's SMTP mailer into it without the database (as many connections
// and goroutines), each drainMails messages; then it queues drainMails OTP
// mails in the outbox in one COPY (visible at once, at its commit) and
// measures how fast the server's dispatcher delivers them to the same peer,
// from the first accepted to the last. It prints
//
//	bench: smtp_peer_alone mails=<n> mails_per_s=<n> connections=<n>
//	bench: smtp_mailer_alone mails=<n> mails_per_s=<n> connections=<n>
//	bench: outbox_drain mails=<n> mails_per_s=<n> drain_ms=<n> queued_to_empty_ms=<n> connections=<n> left=<n>
//	bench: outbox_drain ratio_to_peer=<drain / peer> ratio_to_mailer=<drain / mailer>
func outboxDrain(ctx context.Context, e *env) (bool, error) {
	if e.Plugin == nil {
		return false, errors.New("outbox_drain needs the in-process server (not -url)")
	}
	if _, _, err := e.drainOutbox(ctx, 2*time.Minute); err != nil {
		return false, err
	}
	mp, err := e.mailPayload()
	if err != nil {
		return false, err
	}
	conns := e.Plugin.Provider.Config().Mail.SMTPMaxConnections

	// The peer alone: a bare SMTP client (net/smtp) sending one prepared
	// message over each connection again and again.
	raw := rawMessage(mp)
	e.peer.resetWindow()
	if err := sendRaw(ctx, e.peer.addr, conns, drainMails, raw); err != nil {
		return false, fmt.Errorf("peer alone: %w", err)
	}
	n, span := e.peer.window()
	peerRate := rate(n, span)
	fmt.Printf("bench: smtp_peer_alone mails=%d mails_per_s=%.0f connections=%d (net/smtp client, one prepared message)\n", n, peerRate, conns)

	// otpstep's SMTP mailer into the peer, without the database.
	m, err := e.newMailer(conns)
	if err != nil {
		return false, err
	}
	defer m.Close()
	before := e.peer.conns.Load()
	e.peer.resetWindow()
	var next atomic.Int64
	errs := make(chan error, conns)
	var wg sync.WaitGroup
	for range conns {
		wg.Go(func() {
			for i := next.Add(1); i <= drainMails && ctx.Err() == nil; i = next.Add(1) {
				msg := mail.Message{To: fmt.Sprintf("mailer-%d@bench.localhost", i), Subject: mp.subject, Text: mp.text, HTML: mp.html}
				if err := m.Send(ctx, msg); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return false, fmt.Errorf("mailer alone: %w", err)
	}
	n, span = e.peer.window()
	mailerRate := rate(n, span)
	fmt.Printf("bench: smtp_mailer_alone mails=%d mails_per_s=%.0f connections=%d (otpstep's SMTP mailer, no database)\n", n, mailerRate, e.peer.conns.Load()-before)

	// The dispatcher draining a backlog.
	db, err := e.pool(ctx)
	if err != nil {
		return false, err
	}
	rows := make([][]any, drainMails)
	now := time.Now().UTC()
	for i := range rows {
		id := uuid.NewString()
		sealed, err := mp.seal(id, fmt.Sprintf("drain-%d@bench.localhost", i))
		if err != nil {
			return false, err
		}
		rows[i] = []any{id, sealed, 0, now, now, ""}
	}
	before = e.peer.conns.Load()
	e.peer.resetWindow()
	cols := []string{"id", "sealed_payload", "attempts", "available_at", "created_at", "last_error"}
	if _, err := db.CopyFrom(ctx, pgx.Identifier{"mail_outbox"}, cols, pgx.CopyFromRows(rows)); err != nil {
		return false, fmt.Errorf("queue %d mails: %w", drainMails, err)
	}
	queued := time.Now()
	_, left, err := e.drainOutbox(ctx, 5*time.Minute)
	if err != nil {
		return false, err
	}
	n, span = e.peer.window()
	drainRate := rate(n, span)
	fmt.Printf("bench: outbox_drain mails=%d mails_per_s=%.0f drain_ms=%.0f queued_to_empty_ms=%.0f connections=%d left=%d\n",
		n, drainRate, ms(span), ms(time.Since(queued)), e.peer.conns.Load()-before, left)
	if peerRate > 0 && mailerRate > 0 {
		fmt.Printf("bench: outbox_drain ratio_to_peer=%.2f ratio_to_mailer=%.2f\n", drainRate/peerRate, drainRate/mailerRate)
	}
	return left == 0 && n >= drainMails, nil
}

func rate(n int, span time.Duration) float64 {
	if n < 2 || span <= 0 {
		return 0
	}
	return float64(n-1) / span.Seconds()
}

// deliveryLatency pairs each code put_session's measured run issued (by
// recipient and code, taken from the response) with the SMTP peer's
// acceptance of its mail, in whichever order the two arrive.
type deliveryLatency struct {
	run string // the measured attack's name; the warm-up's codes are ignored

	mu        sync.Mutex
	emails    sync.Map             // session id → the recipient of its mail
	issued    map[string]time.Time // key → when its request was sent, until delivered
	accepted  map[string]time.Time // key → when accepted, until its response is seen
	latencies []time.Duration
	total     int
}

func newDeliveryLatency(run string) *deliveryLatency {
	return &deliveryLatency{run: run, issued: map[string]time.Time{}, accepted: map[string]time.Time{}}
}

func latencyKey(to, code string) string { return strings.ToLower(to) + " " + code }

// sent records which recipient a session id's mail goes to.
func (d *deliveryLatency) sent(sid, to string) { d.emails.Store(sid, to) }

// observe takes a put_session result: its session id (the URL's last
// segment) and the code in its body.
func (d *deliveryLatency) observe(r *vegeta.Result) {
	if r.Attack != d.run || r.Code != 200 {
		return
	}
	sid := r.URL[strings.LastIndexByte(r.URL, '/')+1:]
	to, ok := d.emails.LoadAndDelete(sid)
	if !ok {
		return
	}
	var body struct {
		OTP string `json:"otp"`
	}
	if json.Unmarshal(r.Body, &body) != nil || body.OTP == "" {
		return
	}
	key := latencyKey(to.(string), body.OTP)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.total++
	if at, ok := d.accepted[key]; ok {
		delete(d.accepted, key)
		d.latencies = append(d.latencies, at.Sub(r.Timestamp))
		return
	}
	d.issued[key] = r.Timestamp
}

// onAccept is the peer's hook.
func (d *deliveryLatency) onAccept(to, code string, at time.Time) {
	key := latencyKey(to, code)
	d.mu.Lock()
	defer d.mu.Unlock()
	if t, ok := d.issued[key]; ok {
		delete(d.issued, key)
		d.latencies = append(d.latencies, at.Sub(t))
		return
	}
	d.accepted[key] = at
}

// report waits lingerAfterLoad after the load stopped, then prints
//
//	bench: <name> delivery_p50_ms=<n> delivery_p99_ms=<n> issued=<n> delivered=<n> left_after_5s=<n>
//
// with the latency from a request's start to the peer's acceptance of its
// mail; a mail still undelivered counts as slower than any delivered (a
// percentile that falls on one prints as >5000).
func (d *deliveryLatency) report(ctx context.Context, name string, peer *smtpPeer) {
	select {
	case <-ctx.Done():
	case <-time.After(lingerAfterLoad):
	}
	peer.setOnAccept(nil)
	d.mu.Lock()
	defer d.mu.Unlock()
	lat := slices.Clone(d.latencies)
	slices.Sort(lat)
	left := d.total - len(lat)
	pct := func(q float64) string {
		if d.total == 0 {
			return "0"
		}
		i := int(q * float64(d.total-1))
		if i >= len(lat) {
			return fmt.Sprintf(">%.0f", ms(lingerAfterLoad))
		}
		return fmt.Sprintf("%.1f", ms(lat[i]))
	}
	fmt.Printf("bench: %s delivery_p50_ms=%s delivery_p99_ms=%s issued=%d delivered=%d left_after_5s=%d\n",
		name, pct(0.50), pct(0.99), d.total, len(lat), left)
}

// rawMessage is an OTP mail as bytes, for sendRaw.
func rawMessage(mp *mailPayload) []byte {
	var b strings.Builder
	b.WriteString("From: otpstep <no-reply@bench.localhost>\r\nTo: peer@bench.localhost\r\nSubject: " + mp.subject + "\r\n")
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=b1\r\n\r\n")
	b.WriteString("--b1\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n" + strings.ReplaceAll(mp.text, "\n", "\r\n") + "\r\n")
	b.WriteString("--b1\r\nContent-Type: text/html; charset=UTF-8\r\n\r\n" + strings.ReplaceAll(mp.html, "\n", "\r\n") + "\r\n--b1--\r\n")
	return []byte(b.String())
}

// sendRaw sends msg n times to the SMTP server at addr over conns
// connections, each reused for message after message.
func sendRaw(ctx context.Context, addr string, conns, n int, msg []byte) error {
	var next atomic.Int64
	errs := make(chan error, conns)
	var wg sync.WaitGroup
	for range conns {
		wg.Go(func() {
			c, err := smtp.Dial(addr)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			for i := next.Add(1); i <= int64(n) && ctx.Err() == nil; i = next.Add(1) {
				if err := sendOne(c, fmt.Sprintf("peer-%d@bench.localhost", i), msg); err != nil {
					errs <- err
					return
				}
			}
			_ = c.Quit()
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func sendOne(c *smtp.Client, to string, msg []byte) error {
	if err := c.Mail("no-reply@bench.localhost"); err != nil {
		return err
	}
	if err := c.Rcpt(to); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	return w.Close()
}
