package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// cpuSample is where the machine's CPU time went, from /proc (Linux only;
// elsewhere every field stays zero and -v prints nothing useful).
type cpuSample struct {
	at                  time.Time
	total, idle, iowait float64 // machine, in clock ticks
	irq                 float64 // irq + softirq + steal: loopback TCP lands here
	self                float64 // this process (server + load generator), in ticks
	postgres            float64 // every process whose command is postgres, in ticks
	ctxt                float64 // context switches, machine-wide
}

func sampleCPU() cpuSample {
	s := cpuSample{at: time.Now()}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		if _, rest, ok := strings.Cut(string(b), "\nctxt "); ok {
			n, _, _ := strings.Cut(rest, "\n")
			s.ctxt, _ = strconv.ParseFloat(n, 64)
		}
		line, _, _ := strings.Cut(string(b), "\n")
		f := strings.Fields(line)
		for i, v := range f[1:] {
			x, _ := strconv.ParseFloat(v, 64)
			if i >= 8 { // guest time is already counted in user
				break
			}
			s.total += x
			switch i {
			case 3:
				s.idle = x
			case 4:
				s.iowait = x
			case 5, 6, 7:
				s.irq += x
			}
		}
	}
	s.self = procTicks("/proc/self/stat")
	if ents, err := os.ReadDir("/proc"); err == nil {
		for _, e := range ents {
			if _, err := strconv.Atoi(e.Name()); err != nil {
				continue
			}
			if comm, _ := os.ReadFile("/proc/" + e.Name() + "/comm"); strings.TrimSpace(string(comm)) == "postgres" {
				s.postgres += procTicks("/proc/" + e.Name() + "/stat")
			}
		}
	}
	return s
}

// procTicks is utime+stime of one /proc/<pid>/stat.
func procTicks(path string) float64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	_, rest, ok := strings.Cut(string(b), ") ")
	if !ok {
		return 0
	}
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return u + st
}

// cpuLine describes the machine between two samples, in cores busy: this
// process, PostgreSQL, everything else, and idle (with iowait); then per
// request, the CPU time of this process and of PostgreSQL and the context
// switches machine-wide. On this shared machine the per-request figures move
// less from run to run than requests per second do (fewer round trips show as
// fewer context switches whatever the neighbours do).
func cpuLine(name string, a, b cpuSample, requests uint64) string {
	dt := b.total - a.total
	if dt <= 0 {
		return fmt.Sprintf("# %s cpu: not available", name)
	}
	cores := dt / (100 * b.at.Sub(a.at).Seconds()) // ticks are USER_HZ=100
	frac := func(x float64) float64 { return x / dt * cores }
	self, pg := frac(b.self-a.self), frac(b.postgres-a.postgres)
	idle, iowait := frac(b.idle-a.idle), frac(b.iowait-a.iowait)
	irq := frac(b.irq - a.irq)
	other := cores - self - pg - idle - iowait - irq
	if other < 0 {
		other = 0
	}
	line := fmt.Sprintf("# %s cpu (cores of %.1f): bench+server=%.2f postgres=%.2f irq+steal=%.2f other=%.2f idle=%.2f iowait=%.2f",
		name, cores, self, pg, irq, other, idle, iowait)
	if requests > 0 {
		n := float64(requests)
		line += fmt.Sprintf("; per request: bench+server_ms=%.3f postgres_ms=%.3f ctxsw=%.1f",
			(b.self-a.self)*10/n, (b.postgres-a.postgres)*10/n, (b.ctxt-a.ctxt)/n)
	}
	return line
}

// dbSample is what PostgreSQL's statistics say about the bench's database
// (commits) and the whole server (WAL syncs, pg_stat_wal: other databases'
// work counts too). PostgreSQL flushes backend statistics about once a
// second, so over a short run the figures are approximate.
type dbSample struct {
	ok                          bool
	commits, walSyncs, walBytes int64
}

func (e *env) sampleDB(ctx context.Context) dbSample {
	if e.dsn == "" {
		return dbSample{}
	}
	db, err := e.pool(ctx)
	if err != nil {
		return dbSample{}
	}
	var s dbSample
	err = db.QueryRow(ctx, `SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()),
		(SELECT wal_sync FROM pg_stat_wal), (SELECT wal_bytes::bigint FROM pg_stat_wal)`).Scan(&s.commits, &s.walSyncs, &s.walBytes)
	s.ok = err == nil
	return s
}

// dbLine describes the database work per request between two samples.
func dbLine(name string, a, b dbSample, requests uint64) string {
	if !a.ok || !b.ok || requests == 0 {
		return ""
	}
	n := float64(requests)
	return fmt.Sprintf("# %s db: commits/request=%.1f wal_syncs/request=%.2f wal_bytes/request=%.0f (server-wide; commits per WAL sync=%.1f)",
		name, float64(b.commits-a.commits)/n, float64(b.walSyncs-a.walSyncs)/n, float64(b.walBytes-a.walBytes)/n,
		float64(b.commits-a.commits)/max(float64(b.walSyncs-a.walSyncs), 1))
}
