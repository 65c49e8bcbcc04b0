// Command bench is `make bench`: it starts otpstep in this process on a
// throwaway PostgreSQL database (or targets an external server with -url),
// drives each scenario with vegeta at a fixed number of concurrent
// connections and unlimited rate, and prints one line per scenario:
//
//	bench: <name> rps=<n> p50_ms=<n> p99_ms=<n>
//
// A scenario whose requests failed adds a line
//
//	bench: <name> failures=<n> first_error=<text>
//
// and the command exits non-zero. It asserts no timings.
//
// A scenario with a floor (floor.go: the endpoint's SQL statements run
// directly with pgx, same workers and duration) adds
//
//	bench: <name>_floor rps=<n> p50_ms=<n> p99_ms=<n>
//	bench: <name> ratio=<endpoint rps / floor rps>
//
// and scenarios may print further "bench: <name> key=value" lines (the OTP
// scenarios: the outbox backlog; put_session: the delivery latency of its
// codes, request sent → accepted by the SMTP peer, p50 and p99, and how many
// were not delivered 5s after the load stopped). outbox_drain is not an HTTP
// load: it prints the SMTP peer's rate alone (a bare client), otpstep's SMTP
// mailer's into it without the database, the rate at which the dispatcher
// drains 20,000 queued mails into it, and the ratios.
//
// The in-process server delivers its mail over SMTP (otpstep's mailer,
// mail.smtp_max_connections connections) to an SMTP server in this process
// (smtppeer.go) that accepts everything.
//
// Adding a scenario is one function (see scenarios.go): it prepares what it
// needs through the env and returns the request to send and how to check a
// response.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// PostgresEnv names the PostgreSQL server the bench creates its throwaway
// database on.
const PostgresEnv = "OTPSTEP_BENCH_POSTGRES"

// DefaultPostgresDSN is used when PostgresEnv is unset.
const DefaultPostgresDSN = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

type flags struct {
	duration     time.Duration
	warmup       time.Duration
	workers      int
	scenarios    string
	url          string
	clientID     string
	clientSecret string
	postgres     string
	maxOpenConns int
	cpuProfile   string
	memProfile   string
	timeout      time.Duration
	verbose      bool
	users        int
	challenges   int
	floors       bool
	analyze      bool
}

func parseFlags() flags {
	var f flags
	pg := os.Getenv(PostgresEnv)
	if pg == "" {
		pg = DefaultPostgresDSN
	}
	flag.DurationVar(&f.duration, "duration", 10*time.Second, "measured duration of each scenario")
	flag.DurationVar(&f.warmup, "warmup", 2*time.Second, "unmeasured warm-up before each scenario (0 disables)")
	flag.IntVar(&f.workers, "workers", 32, "concurrent connections (vegeta workers), at unlimited rate")
	flag.StringVar(&f.scenarios, "scenarios", strings.Join(scenarioNames(), ","), "comma-separated scenarios to run, in order")
	flag.StringVar(&f.url, "url", "", "bench an already running otpstep at this base URL instead of starting one (needs -client-id and -client-secret)")
	flag.StringVar(&f.clientID, "client-id", "", "with -url: a confidential client allowed the client_credentials grant")
	flag.StringVar(&f.clientSecret, "client-secret", os.Getenv("OTPSTEP_BENCH_CLIENT_SECRET"), "with -url: that client's secret (default $OTPSTEP_BENCH_CLIENT_SECRET)")
	flag.StringVar(&f.postgres, "postgres", pg, "PostgreSQL server to create the throwaway database on (default $"+PostgresEnv+")")
	flag.IntVar(&f.maxOpenConns, "max-open-conns", 0, "database.max_open_conns of the in-process server (0: otpstep's default)")
	flag.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file; server handlers carry the labels side=server and path=<URL path, UUID segments as {id}>, floors side=floor (with -url: the load generator only)")
	flag.StringVar(&f.memProfile, "memprofile", "", "write an allocation profile of the whole run to this file when it ends (go tool pprof -sample_index=alloc_space); the same labels as -cpuprofile do not apply to it: read it by function")
	flag.DurationVar(&f.timeout, "timeout", 30*time.Second, "per-request timeout")
	flag.BoolVar(&f.verbose, "v", false, "also print, per scenario, where the machine's CPU went (lines start with #)")
	flag.IntVar(&f.users, "users", 1000, "users the OTP scenarios spread their requests over (round-robin), each with a login session and a token")
	flag.IntVar(&f.challenges, "otp-challenges", 0, "verify_otp: live challenges created before the warm-up, each verified once (warm-up and run end early when they run out; its floor gets 4 × as many); 0: as many as the server creates in 2 × (warm-up + duration)")
	flag.BoolVar(&f.analyze, "analyze", true, "OTP scenarios: ANALYZE the database once prepared, before the warm-up (and before their floors), as autovacuum would have in a database in service; false keeps the statistics of the empty tables")
	flag.BoolVar(&f.floors, "floor", true, "run the scenarios' floors (their SQL executed directly with pgx) after them")
	flag.Parse()
	return f
}

func main() { os.Exit(run()) }

func run() int {
	f := parseFlags()
	chosen, err := pickScenarios(f.scenarios)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 2
	}
	if f.workers < 1 {
		fmt.Fprintln(os.Stderr, "bench: -workers must be at least 1")
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	e, cleanup, err := newEnv(ctx, f)
	if cleanup != nil {
		defer cleanup()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	fmt.Printf("bench: machine cpus=%d gomaxprocs=%d go=%s; %s; postgres=%q; workers=%d duration=%s warmup=%s\n",
		runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), e.where, e.postgresVersion, f.workers, f.duration, f.warmup)

	if f.cpuProfile != "" {
		out, err := os.Create(f.cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench: -cpuprofile:", err)
			return 1
		}
		defer out.Close()
		// Started around the whole run (warm-ups included) so one file
		// covers every scenario; per-scenario views come from -tagfocus.
		if err := pprof.StartCPUProfile(out); err != nil {
			fmt.Fprintln(os.Stderr, "bench: -cpuprofile:", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}

	if f.memProfile != "" {
		defer func() {
			if err := writeAllocs(f.memProfile); err != nil {
				fmt.Fprintln(os.Stderr, "bench: -memprofile:", err)
			}
		}()
	}

	failed := false
	for _, sc := range chosen {
		if ctx.Err() != nil {
			break
		}
		ok, err := runScenario(ctx, e, sc, f)
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: %s: %v\n", sc.name, err)
			return 1
		}
		failed = failed || !ok
	}
	if ctx.Err() != nil {
		fmt.Fprintln(os.Stderr, "bench: interrupted")
		return 130
	}
	if failed {
		return 1
	}
	return 0
}

// writeAllocs writes the allocations sampled since the process started (the
// runtime's default sampling rate, one sample per 512 KiB on average).
func writeAllocs(path string) error {
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("allocs").WriteTo(out, 0); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}

// runScenario prepares sc, warms up, measures and prints its line(s), then
// its floor's. It reports false when any request (warm-up included) failed.
func runScenario(ctx context.Context, e *env, sc scenario, f flags) (bool, error) {
	if sc.run != nil {
		return sc.run(ctx, e)
	}
	load, err := sc.prepare(ctx, e)
	if err != nil {
		return false, fmt.Errorf("prepare: %w", err)
	}
	if err := prime(ctx, e, load); err != nil {
		return false, fmt.Errorf("first request: %w", err)
	}
	run := func(name string, d time.Duration) (tally, *vegeta.Metrics) {
		return attack(ctx, e, name, load, f.workers, d)
	}
	rps, ok := measure(ctx, e, sc.name, f, run)
	if load.after != nil {
		if err := load.after(ctx); err != nil {
			return false, err
		}
	}
	if load.floor == nil || !f.floors || ctx.Err() != nil {
		return ok, nil
	}
	db, err := e.pool(ctx)
	if err != nil {
		return false, fmt.Errorf("floor: %w", err)
	}
	op, err := load.floor.prepare(ctx, db)
	if err != nil {
		return false, fmt.Errorf("floor: prepare: %w", err)
	}
	name := sc.name + "_floor"
	floorRPS, floorOK := measure(ctx, e, name, f, func(name string, d time.Duration) (tally, *vegeta.Metrics) {
		return runOps(ctx, name, op, f.workers, d)
	})
	if load.floor.after != nil {
		if err := load.floor.after(ctx); err != nil {
			return false, err
		}
	}
	if floorRPS > 0 {
		fmt.Printf("bench: %s ratio=%.2f\n", sc.name, rps/floorRPS)
	}
	return ok && floorOK, nil
}

// measure warms up and measures one load (run is attack or runOps) and
// prints its line(s); it returns the rps and false when anything failed.
func measure(ctx context.Context, e *env, name string, f flags, run func(name string, d time.Duration) (tally, *vegeta.Metrics)) (float64, bool) {
	var warm tally
	if f.warmup > 0 {
		warm, _ = run(name+"-warmup", f.warmup)
	}
	var dbBefore, dbAfter dbSample
	if f.verbose {
		dbBefore = e.sampleDB(ctx)
	}
	before := sampleCPU()
	res, m := run(name, f.duration)
	after := sampleCPU()
	if f.verbose {
		dbAfter = e.sampleDB(ctx)
	}
	// rps counts only requests that passed their check, over the time from
	// the first request sent to the last response received.
	rps := 0.0
	span := m.End.Sub(m.Earliest)
	if span > 0 {
		rps = float64(int(m.Requests)-res.failures) / span.Seconds()
	}
	fmt.Printf("bench: %s rps=%.0f p50_ms=%.2f p99_ms=%.2f\n", name, rps, ms(m.Latencies.P50), ms(m.Latencies.P99))
	if f.verbose {
		fmt.Println(cpuLine(name, before, after, m.Requests))
		if line := dbLine(name, dbBefore, dbAfter, m.Requests); line != "" {
			fmt.Println(line)
		}
	}
	if warm.exhausted || res.exhausted {
		fmt.Printf("bench: %s exhausted=true measured_ms=%.0f requests=%d (ran out of prepared work before -warmup + -duration ended)\n",
			name, ms(span), m.Requests)
	}
	failures := warm.failures + res.failures
	if failures > 0 {
		first := warm.firstError
		if first == "" {
			first = res.firstError
		}
		fmt.Printf("bench: %s failures=%d first_error=%s\n", name, failures, first)
		return rps, false
	}
	if m.Requests == 0 {
		fmt.Printf("bench: %s failures=0 first_error=%q\n", name, "no request completed")
		return 0, false
	}
	return rps, true
}

// prime sends one request alone before the warm-up, so that the server
// prepares the endpoint's statements before they are used concurrently
// (see parallel), and fails early when the request does not pass its check.
func prime(ctx context.Context, e *env, load load) error {
	tgt := load.target
	if load.next != nil {
		if err := load.next(&tgt); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, prepTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, tgt.Method, e.baseURL+tgt.URL, bytes.NewReader(tgt.Body))
	if err != nil {
		return err
	}
	req.Header = tgt.Header.Clone()
	resp, err := e.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if err := load.check(resp.StatusCode, body); err != nil {
		return err
	}
	if e.Plugin != nil {
		// The outbox dispatcher's statements too, when the request queued mail.
		if _, _, err := e.drainOutbox(ctx, 10*time.Second); err != nil {
			return err
		}
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// tally counts failed requests and keeps the first failure's description.
type tally struct {
	failures   int
	firstError string
	// exhausted: the load ran out of prepared work (load.next or a floor
	// op said so) before its time was up.
	exhausted bool
}

// attack runs one vegeta attack at unlimited rate with exactly workers
// concurrent requests, checking every response with load.check.
func attack(ctx context.Context, e *env, name string, load load, workers int, d time.Duration) (tally, *vegeta.Metrics) {
	atk := vegeta.NewAttacker(
		vegeta.Client(e.client),
		vegeta.Workers(uint64(workers)),
		vegeta.MaxWorkers(uint64(workers)),
	)
	tgt := load.target
	tgt.URL = e.baseURL + load.target.URL
	targeter := vegeta.NewStaticTargeter(tgt)
	if load.next != nil {
		targeter = func(t *vegeta.Target) error {
			if err := load.next(t); err != nil {
				return err
			}
			t.URL = e.baseURL + t.URL
			return nil
		}
	}

	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			atk.Stop()
		case <-done:
		}
	}()

	var (
		t tally
		m vegeta.Metrics
	)
	for r := range atk.Attack(targeter, vegeta.Rate{Freq: 0}, d, name) {
		if r.Code == 0 && r.Error == vegeta.ErrNoTargets.Error() {
			// Not a request: load.next ran out, and the attack stops.
			t.exhausted = true
			continue
		}
		m.Add(r)
		if err := checkResult(r, load.check); err != nil {
			if t.failures == 0 {
				t.firstError = err.Error()
			}
			t.failures++
		}
		if load.observe != nil {
			load.observe(r)
		}
	}
	m.Close()
	return t, &m
}

func checkResult(r *vegeta.Result, check func(status int, body []byte) error) error {
	if r.Error != "" && r.Code == 0 {
		return errors.New(r.Error)
	}
	if err := check(int(r.Code), r.Body); err != nil {
		return err
	}
	if r.Error != "" {
		return errors.New(r.Error)
	}
	return nil
}

// wantStatus is the common part of a check: the status, and the body quoted
// (shortened) when it differs.
func wantStatus(status, want int, body []byte) error {
	if status != want {
		return fmt.Errorf("status %d (want %d): %s", status, want, short(body))
	}
	return nil
}

func short(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return fmt.Sprintf("%q", s)
}

// newHTTPClient keeps one idle connection per worker, so every request after
// the first of a worker reuses its connection.
func newHTTPClient(workers int, timeout time.Duration) *http.Client {
	tr := &http.Transport{
		Proxy:               nil,
		MaxIdleConns:        workers * 2,
		MaxIdleConnsPerHost: workers,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	return &http.Client{
		Transport: tr,
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}
