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
// Adding a scenario is one function (see scenarios.go): it prepares what it
// needs through the env and returns the request to send and how to check a
// response.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
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
	timeout      time.Duration
	verbose      bool
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
	flag.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file; server handlers carry the labels side=server and path=<URL path> (with -url: the load generator only)")
	flag.DurationVar(&f.timeout, "timeout", 30*time.Second, "per-request timeout")
	flag.BoolVar(&f.verbose, "v", false, "also print, per scenario, where the machine's CPU went (lines start with #)")
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

// runScenario prepares sc, warms up, measures and prints its line(s). It
// reports false when any request (warm-up included) failed.
func runScenario(ctx context.Context, e *env, sc scenario, f flags) (bool, error) {
	load, err := sc.prepare(ctx, e)
	if err != nil {
		return false, fmt.Errorf("prepare: %w", err)
	}
	var warm tally
	if f.warmup > 0 {
		warm, _ = attack(ctx, e, sc.name+"-warmup", load, f.workers, f.warmup)
	}
	before := sampleCPU()
	res, m := attack(ctx, e, sc.name, load, f.workers, f.duration)
	after := sampleCPU()
	// rps counts only requests that passed their check, over the time from
	// the first request sent to the last response received.
	rps := 0.0
	if span := m.End.Sub(m.Earliest).Seconds(); span > 0 {
		rps = float64(int(m.Requests)-res.failures) / span
	}
	fmt.Printf("bench: %s rps=%.0f p50_ms=%.2f p99_ms=%.2f\n", sc.name, rps, ms(m.Latencies.P50), ms(m.Latencies.P99))
	if f.verbose {
		fmt.Println(cpuLine(sc.name, before, after))
	}
	failures := warm.failures + res.failures
	if failures > 0 {
		first := warm.firstError
		if first == "" {
			first = res.firstError
		}
		fmt.Printf("bench: %s failures=%d first_error=%s\n", sc.name, failures, first)
		return false, nil
	}
	if m.Requests == 0 {
		return false, errors.New("no request completed")
	}
	return true, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// tally counts failed requests and keeps the first failure's description.
type tally struct {
	failures   int
	firstError string
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
		m.Add(r)
		if err := checkResult(r, load.check); err != nil {
			if t.failures == 0 {
				t.firstError = err.Error()
			}
			t.failures++
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
