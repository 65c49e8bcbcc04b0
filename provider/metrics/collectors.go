package metrics

import (
	"context"
	"database/sql"
	"runtime/debug"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Backlog reads the outbox's queue: how many mails wait and when the oldest
// was queued (zero when none).
type Backlog func(ctx context.Context) (depth int, oldest time.Time, err error)

// outboxCollector reports the outbox backlog, read from storage at scrape
// time within timeout, so every instance reports the shared queue.
type outboxCollector struct {
	backlog Backlog
	clock   func() time.Time
	timeout time.Duration
	depth   *prometheus.Desc
	age     *prometheus.Desc
	up      *prometheus.Desc
}

// NewOutboxCollector reports otpstep_outbox_depth and
// otpstep_outbox_oldest_age_seconds from backlog, each scrape, within
// timeout; when the read fails, otpstep_outbox_backlog_read_ok is 0 and the
// two gauges are left out of that scrape.
func NewOutboxCollector(backlog Backlog, clock func() time.Time, timeout time.Duration) prometheus.Collector {
	return &outboxCollector{
		backlog: backlog, clock: clock, timeout: timeout,
		depth: prometheus.NewDesc("otpstep_outbox_depth", "Mails queued in the outbox (all instances), read at scrape time.", nil, nil),
		age: prometheus.NewDesc("otpstep_outbox_oldest_age_seconds",
			"Age of the oldest mail queued in the outbox (0 when empty), read at scrape time.", nil, nil),
		up: prometheus.NewDesc("otpstep_outbox_backlog_read_ok", "1 when the scrape could read the outbox backlog from the database.", nil, nil),
	}
}

func (c *outboxCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.depth
	ch <- c.age
	ch <- c.up
}

func (c *outboxCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	depth, oldest, err := c.backlog(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	age := 0.0
	if !oldest.IsZero() {
		age = max(c.clock().Sub(oldest).Seconds(), 0)
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(depth))
	ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, age)
}

// NewSQLPoolCollector reports database/sql's pool statistics of db (gorm's
// pool) as go_sql_* series labelled db_name="otpstep".
func NewSQLPoolCollector(db *sql.DB) prometheus.Collector {
	return collectors.NewDBStatsCollector(db, "otpstep")
}

// pgxPoolCollector reports the native pgx pool's Stat().
type pgxPoolCollector struct {
	pool                                    *pgxpool.Pool
	max, total, idle, acquired, constructed *prometheus.Desc
	acquires, waits, waitSeconds            *prometheus.Desc
}

// NewPgxPoolCollector reports otpstep_pgxpool_* from pool.Stat() (the
// PostgreSQL pool for hot reads beside gorm's).
func NewPgxPoolCollector(pool *pgxpool.Pool) prometheus.Collector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("otpstep_pgxpool_"+name, help, nil, nil)
	}
	return &pgxPoolCollector{
		pool:        pool,
		max:         d("max_connections", "Maximum size of the pgx read pool."),
		total:       d("connections", "Connections in the pgx read pool (idle, acquired, being built)."),
		idle:        d("idle_connections", "Idle connections in the pgx read pool."),
		acquired:    d("acquired_connections", "Connections in use in the pgx read pool."),
		constructed: d("constructing_connections", "Connections being built in the pgx read pool."),
		acquires:    d("acquires_total", "Connections acquired from the pgx read pool."),
		waits:       d("empty_acquires_total", "Acquires that waited because the pgx read pool was empty."),
		waitSeconds: d("acquire_wait_seconds_total", "Time spent waiting for a connection of the pgx read pool."),
	}
}

func (c *pgxPoolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.max, c.total, c.idle, c.acquired, c.constructed, c.acquires, c.waits, c.waitSeconds} {
		ch <- d
	}
}

func (c *pgxPoolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.pool.Stat()
	g := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	k := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	g(c.max, float64(s.MaxConns()))
	g(c.total, float64(s.TotalConns()))
	g(c.idle, float64(s.IdleConns()))
	g(c.acquired, float64(s.AcquiredConns()))
	g(c.constructed, float64(s.ConstructingConns()))
	k(c.acquires, float64(s.AcquireCount()))
	k(c.waits, float64(s.EmptyAcquireCount()))
	k(c.waitSeconds, s.AcquireDuration().Seconds())
}

// NewBuildInfo is otpstep_build_info{version,revision} = 1, from the
// binary's build information (the module version, "(devel)" for a local
// build; the VCS revision, "unknown" without one).
func NewBuildInfo() prometheus.Collector {
	version, revision := "unknown", "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && s.Value != "" {
				revision = s.Value
			}
		}
	}
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "otpstep_build_info",
		Help:        "Always 1; the labels say which build runs (module version, VCS revision).",
		ConstLabels: prometheus.Labels{"version": version, "revision": revision},
	}, func() float64 { return 1 })
}

// Register registers collectors on reg (nil: none), ignoring those already
// registered (a second provider on the same registry).
func Register(reg prometheus.Registerer, cs ...prometheus.Collector) {
	if reg == nil {
		return
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			if _, ok := err.(prometheus.AlreadyRegisteredError); !ok { //nolint:errorlint // Register returns it unwrapped
				panic("metrics: registering: " + err.Error())
			}
		}
	}
}
