package plugin_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/otpstep/otpstep/plugin"
	"github.com/otpstep/otpstep/plugin/plugintest"
	"github.com/otpstep/otpstep/provider/mail/mailtest"
	"github.com/otpstep/otpstep/storage"
	"github.com/otpstep/otpstep/storage/storagetest"
)

// serveProc is one `otpstep serve` process a test signals and waits for.
type serveProc struct {
	t    *testing.T
	addr string
	url  string
	// adminURL is the admin listener's (server.admin_listen): /health/ready.
	adminURL string
	cmd      *exec.Cmd
	logs     *syncBuffer
	done     chan struct{} // closed when the process has exited
}

// syncBuffer collects a process's output; the test reads it meanwhile.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startServe runs `otpstep serve` on dsn with mail to smtpURL and waits
// until it is ready; env is appended (a later value of a variable wins).
func startServe(t *testing.T, dsn, smtpURL string, env ...string) *serveProc {
	t.Helper()
	bin, err := buildBinary()
	if err != nil {
		t.Fatal(err)
	}
	addr, admin := freePort(t), freePort(t)
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(),
		"OTPSTEP_DATABASE_DSN="+dsn,
		"OTPSTEP_SERVER_LISTEN="+addr,
		"OTPSTEP_SERVER_ADMIN_LISTEN="+admin,
		"OTPSTEP_SERVER_PUBLIC_URL=http://"+addr,
		"OTPSTEP_SECRETS_SYSTEM="+strings.Repeat("test-secret-", 4),
		"OTPSTEP_MAIL_DRIVER=smtp",
		"OTPSTEP_MAIL_SMTP_URL="+smtpURL,
		"OTPSTEP_MAIL_TLS=none",
		"OTPSTEP_LOG_LEVEL=warn",
	)
	cmd.Env = append(cmd.Env, env...)
	p := &serveProc{t: t, addr: addr, url: "http://" + addr, adminURL: "http://" + admin, cmd: cmd, logs: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
			return
		default:
		}
		_ = cmd.Process.Kill()
		<-p.done
	})
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get(p.adminURL + "/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case <-p.done:
			t.Fatalf("otpstep serve exited before it was ready:\n%s", p.logs)
		default:
		}
	}
	t.Fatalf("otpstep serve on %s did not become ready:\n%s", addr, p.logs)
	return nil
}

// signal sends sig to the process.
func (p *serveProc) signal(sig os.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
}

// wait waits for the process to exit and returns its exit code.
func (p *serveProc) wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		p.t.Fatalf("otpstep serve did not exit within %s:\n%s", timeout, p.logs)
	}
	return p.cmd.ProcessState.ExitCode()
}

// listenerClosed waits until a new connection to the process is refused:
// the server has stopped accepting, so its drain has begun.
func (p *serveProc) listenerClosed(timeout time.Duration) {
	p.t.Helper()
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		c, err := net.DialTimeout("tcp", p.addr, time.Second)
		if err != nil {
			return
		}
		c.Close()
	}
	p.t.Fatalf("otpstep serve still accepts connections after %s:\n%s", timeout, p.logs)
}

// pendingRequest is a request whose handler runs, waiting for its body: it
// was sent with Expect: 100-continue, and the server answered 100 Continue
// when the handler first read the body, which the client holds back.
type pendingRequest struct {
	conn net.Conn
	br   *bufio.Reader
	body string
}

// startPending sends method path's header with Expect: 100-continue and
// waits for the 100 Continue that says the handler is reading the body.
func startPending(t *testing.T, addr, method, path, contentType, body string, header ...string) *pendingRequest {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nExpect: 100-continue\r\n", method, path, addr, contentType, len(body))
	for i := 0; i+1 < len(header); i += 2 {
		fmt.Fprintf(&b, "%s: %s\r\n", header[i], header[i+1])
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(conn, b.String()); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(conn)
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100") {
		t.Fatalf("want 100 Continue, got %q (%v)", line, err)
	}
	if blank, err := br.ReadString('\n'); err != nil || blank != "\r\n" {
		t.Fatalf("after 100 Continue: %q (%v)", blank, err)
	}
	return &pendingRequest{conn: conn, br: br, body: body}
}

// finish sends the body and reads the response.
func (r *pendingRequest) finish(t *testing.T) (*http.Response, []byte) {
	t.Helper()
	if _, err := io.WriteString(r.conn, r.body); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(r.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, data
}

// migratedPostgres is a fresh, migrated PostgreSQL database: its DSN and
// a store on it.
func migratedPostgres(t *testing.T) (string, *storage.Store) {
	t.Helper()
	dsn := storagetest.PostgresDSN(t)
	store, err := storage.Open(context.Background(), dsn, storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	if err := store.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return dsn, store
}

// Clients that keep connections alive and honour Connection: close lose no
// request across SIGTERM: during server.shutdown_grace readiness answers
// 503 while their requests still succeed, each answer saying Connection:
// close, so no request is ever written on a reused connection the server
// then closes (before, such requests were reset). Once the listener is
// closed a new connection fails (refused, or reset when the kernel had
// queued it), which is where a client stops: the instance is gone.
func TestShutdown_ProcessLosesNoRequestOfKeepAliveClients(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs otpstep serve through SIGTERM")
	}
	dsn, store := migratedPostgres(t)
	smtpSrv := mailtest.StartServer(t)
	setup := plugintest.StartOn(t, store, nil)
	client := setup.NewClient(t, false)
	proc := startServe(t, dsn, smtpSrv.URL(), "OTPSTEP_SERVER_SHUTDOWN_GRACE=3s")

	var (
		signalled                atomic.Bool
		sent, answered, closeHdr atomic.Int64
		mu                       sync.Mutex
		failures                 []string
		ready503                 atomic.Bool
		endRefused, endReset     atomic.Int64 // how the workers' runs ended
	)
	fail := func(format string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		failures = append(failures, fmt.Sprintf(format, a...))
	}
	// refused is a connection that could not be made: nothing was sent.
	refused := func(err error) bool {
		var op *net.OpError
		return errors.As(err, &op) && op.Op == "dial"
	}
	const workers = 4
	var wg sync.WaitGroup
	warm := make(chan struct{}, workers)
	for i := 0; i < workers; i++ {
		wg.Go(func() {
			// One connection per worker, kept alive between requests. POST
			// is not replayable, so the transport does not hide a reset by
			// retrying it on a new connection.
			hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}, Timeout: 30 * time.Second}
			defer hc.CloseIdleConnections()
			for n := 0; ; n++ {
				if n == 20 {
					warm <- struct{}{}
				}
				req, _ := http.NewRequest(http.MethodPost, proc.url+"/oauth2/introspect", strings.NewReader(url.Values{"token": {"not-a-token"}}.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.SetBasicAuth(client.ID, client.Secret)
				var reused atomic.Bool
				req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
					GotConn: func(info httptrace.GotConnInfo) { reused.Store(info.Reused) },
				}))
				after := signalled.Load()
				sent.Add(1)
				resp, err := hc.Do(req)
				if err != nil {
					// A new connection is refused once the listener has
					// closed, or reset if the kernel had queued it for an
					// accept that never came: the client tried to reach an
					// instance that is gone. A request on a connection it
					// reused must never fail.
					if after && refused(err) {
						endRefused.Add(1)
						return
					}
					if after && !reused.Load() {
						endReset.Add(1)
						return
					}
					fail("request %d (after SIGTERM: %v, reused connection: %v): %v", n, after, reused.Load(), err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				answered.Add(1)
				if resp.StatusCode != http.StatusOK {
					fail("request %d: status %d", n, resp.StatusCode)
				}
				if after && resp.Close {
					closeHdr.Add(1)
				}
			}
		})
	}
	wg.Go(func() {
		hc := &http.Client{Transport: &http.Transport{}, Timeout: 30 * time.Second}
		defer hc.CloseIdleConnections()
		for {
			resp, err := hc.Get(proc.adminURL + "/health/ready")
			if err != nil {
				return // the listener is gone (or the connection with it)
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusServiceUnavailable {
				ready503.Store(true)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	for i := 0; i < workers; i++ {
		select {
		case <-warm:
		case <-time.After(60 * time.Second):
			t.Fatalf("workers did not warm up: %v\n%s", failures, proc.logs)
		}
	}
	signalled.Store(true)
	proc.signal(syscall.SIGTERM)
	wg.Wait()
	code := proc.wait(30 * time.Second)
	t.Logf("%d requests sent, %d answered, %d answered with Connection: close after SIGTERM; %d workers ended on a refused connection, %d on a new connection reset",
		sent.Load(), answered.Load(), closeHdr.Load(), endRefused.Load(), endReset.Load())
	if len(failures) > 0 {
		t.Errorf("%d requests failed, e.g. %v", len(failures), failures[0])
	}
	if closeHdr.Load() == 0 {
		t.Error("no answer after SIGTERM said Connection: close")
	}
	if !ready503.Load() {
		t.Error("readiness never answered 503 during the grace")
	}
	if code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
	if t.Failed() {
		t.Logf("logs:\n%s", proc.logs)
	}
}

// A request that outlasts server.shutdown_timeout is cut off: the process
// still exits 0 and logs the request it cut off by method and path.
func TestShutdown_ProcessCutsOffARequestPastTheBudgetAndExitsZero(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs otpstep serve through SIGTERM")
	}
	smtpSrv := mailtest.StartServer(t)
	dsn := "sqlite://" + filepath.Join(t.TempDir(), "shutdown.db")
	proc := startServe(t, dsn, smtpSrv.URL(), "OTPSTEP_SERVER_SHUTDOWN_GRACE=0s", "OTPSTEP_SERVER_SHUTDOWN_TIMEOUT=1s")
	// The token endpoint waits for a body that never comes.
	startPending(t, proc.addr, http.MethodPost, "/oauth2/token", "application/x-www-form-urlencoded", "grant_type=client_credentials")
	proc.signal(syscall.SIGTERM)
	if code := proc.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0:\n%s", code, proc.logs)
	}
	logs := proc.logs.String()
	var line string
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, "cut off") {
			line = l
		}
	}
	if !strings.Contains(line, "count=1") || !strings.Contains(line, "POST /oauth2/token") {
		t.Fatalf("no log line naming the cut-off request (count=1, POST /oauth2/token):\n%s", logs)
	}
}

// Mail of a request that finishes during the drain reaches SMTP before the
// process exits: the outbox keeps sending until the drain has ended, then
// makes a last pass within what is left of server.shutdown_timeout.
func TestShutdown_ProcessSendsMailOfARequestFinishedDuringTheDrain(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs otpstep serve through SIGTERM")
	}
	dsn, store := migratedPostgres(t)
	smtpSrv := mailtest.StartServer(t)
	// The in-process instance only sets up the user and the login; it is
	// closed before the request, so its outbox cannot take the mail.
	setup := plugintest.StartOn(t, store, func(c *plugin.Config) { c.OTP.ReturnInResponse = true })
	client := setup.NewLoginUI(t, allUserScopes...)
	alice := setup.NewUser(t)
	login := setup.LoginWithPassword(t, client, alice)
	setup.HTTP.Close()
	if err := setup.Plugin.Close(); err != nil {
		t.Fatal(err)
	}
	proc := startServe(t, dsn, smtpSrv.URL(), "OTPSTEP_SERVER_SHUTDOWN_GRACE=0s", "OTPSTEP_SERVER_SHUTDOWN_TIMEOUT=20s")

	body, _ := json.Marshal(map[string]any{"userId": alice.ID, "passedLoginOTP": false})
	pending := startPending(t, proc.addr, http.MethodPut, "/user/2024-3/sessions/"+login.SID, "application/json", string(body),
		"Authorization", "Bearer "+login.Token.AccessToken)
	proc.signal(syscall.SIGTERM)
	proc.listenerClosed(30 * time.Second)
	resp, data := pending.finish(t)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT during the drain: %d %s\n%s", resp.StatusCode, data, proc.logs)
	}
	var answer struct{ OTP string }
	if err := json.Unmarshal(data, &answer); err != nil || answer.OTP == "" {
		t.Fatalf("PUT answer %s: %v", data, err)
	}
	if code := proc.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0:\n%s", code, proc.logs)
	}
	msgs := smtpSrv.Messages()
	if len(msgs) != 1 || len(msgs[0].To) != 1 || msgs[0].To[0] != alice.Email || !strings.Contains(msgs[0].Text, answer.OTP) {
		t.Fatalf("mail delivered before exit: %+v, want one to %s with the code\n%s", msgs, alice.Email, proc.logs)
	}
}
