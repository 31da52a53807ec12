package daemon

import (
	"errors"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rosterhq/roster/session"
)

// Version returns rosterd's version from the build information: the main
// module's version (a tag, or "(devel)" in a build from a checkout) and,
// where the build recorded it, the VCS revision, as "v1.2.3" or
// "(devel) abc123def456" (with "+dirty" for uncommitted changes).
func Version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if rev != "" && v == "(devel)" {
		v += " " + rev[:min(len(rev), 12)] + dirty
	}
	return v
}

// metrics are the daemon's Prometheus collectors. Manager counters are read
// from Manager.Stats at scrape time, so they cost nothing on the hot path.
type metrics struct {
	requests *prometheus.CounterVec
	byClass  [5]prometheus.Counter // 1xx..5xx, resolved once
	sweep    prometheus.Histogram
}

func newSweepHistogram() prometheus.Histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "roster_sweep_duration_seconds",
		Help:    "Duration of idle-eviction sweeps.",
		Buckets: prometheus.ExponentialBuckets(1e-6, 4, 12),
	})
}

func newMetrics(m *session.Manager, sweep prometheus.Histogram, reg prometheus.Registerer) *metrics {
	mt := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "roster_proxy_requests_total",
			Help: "Requests through the proxy, by response status class (1xx..5xx).",
		}, []string{"class"}),
		sweep: sweep,
	}
	for i, c := range []string{"1xx", "2xx", "3xx", "4xx", "5xx"} {
		mt.byClass[i] = mt.requests.WithLabelValues(c)
	}
	stat := func(name, help string, kind prometheus.ValueType, f func(session.ManagerStats) int64) prometheus.Collector {
		desc := prometheus.NewDesc(name, help, nil, nil)
		return collectorFunc{desc: desc, collect: func(ch chan<- prometheus.Metric) {
			ch <- prometheus.MustNewConstMetric(desc, kind, float64(f(m.Stats())))
		}}
	}
	reg.MustRegister(
		mt.requests, mt.sweep,
		stat("roster_sessions_active", "Sessions registered now.", prometheus.GaugeValue, func(s session.ManagerStats) int64 { return s.Active }),
		stat("roster_sessions_created_total", "Sessions created.", prometheus.CounterValue, func(s session.ManagerStats) int64 { return s.Created }),
		stat("roster_sessions_closed_total", "Sessions closed by a caller or at shutdown.", prometheus.CounterValue, func(s session.ManagerStats) int64 { return s.Closed }),
		stat("roster_sessions_evicted_total", "Sessions evicted for idleness.", prometheus.CounterValue, func(s session.ManagerStats) int64 { return s.Evicted }),
		stat("roster_sessions_rejected_total", "Creates refused at the cap.", prometheus.CounterValue, func(s session.ManagerStats) int64 { return s.Rejected }),
		stat("roster_requests_in_flight", "Requests in flight through all sessions.", prometheus.GaugeValue, func(s session.ManagerStats) int64 { return s.InFlight }),
	)
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "roster_build_info",
		Help: "Always 1; the labels say which rosterd this is.",
	}, []string{"version", "goversion"})
	build.WithLabelValues(Version(), runtime.Version()).Set(1)
	reg.MustRegister(build)
	// Goroutines, memory, open file descriptors: what a flood of
	// connections shows in. A registry that has them already (the
	// default one) keeps its own.
	for _, c := range []prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				panic(err)
			}
		}
	}
	registerStoreMetrics(m, reg)
	return mt
}

// registerStoreMetrics adds the fleet's store metrics (all zero without a
// store), read from Manager.StoreStats at scrape time.
func registerStoreMetrics(m *session.Manager, reg prometheus.Registerer) {
	stat := func(name, help string, kind prometheus.ValueType, f func(session.StoreStats) float64) prometheus.Collector {
		desc := prometheus.NewDesc(name, help, nil, nil)
		return collectorFunc{desc: desc, collect: func(ch chan<- prometheus.Metric) {
			ch <- prometheus.MustNewConstMetric(desc, kind, f(m.StoreStats()))
		}}
	}
	reg.MustRegister(
		stat("roster_store_leases_held", "Sessions held under a lease in the fleet's store.", prometheus.GaugeValue, func(s session.StoreStats) float64 { return float64(s.LeasesHeld) }),
		stat("roster_store_restores_total", "Sessions restored from the store on a miss.", prometheus.CounterValue, func(s session.StoreStats) float64 { return float64(s.Restores) }),
		stat("roster_store_saves_total", "Session states written to the store.", prometheus.CounterValue, func(s session.StoreStats) float64 { return float64(s.Saves) }),
		stat("roster_store_save_errors_total", "Session states the store did not take (kept and retried).", prometheus.CounterValue, func(s session.StoreStats) float64 { return float64(s.SaveErrors) }),
		stat("roster_store_errors_total", "Store operations that could not reach the store.", prometheus.CounterValue, func(s session.StoreStats) float64 { return float64(s.Errors) }),
		stat("roster_store_fenced_total", "Writes refused because a newer lease exists.", prometheus.CounterValue, func(s session.StoreStats) float64 { return float64(s.Fenced) }),
		stat("roster_store_leases_lost_total", "Sessions dropped because their lease expired or was taken.", prometheus.CounterValue, func(s session.StoreStats) float64 { return float64(s.LeasesLost) }),
		stat("roster_store_unsaved", "Closed sessions whose state waits in memory for the store.", prometheus.GaugeValue, func(s session.StoreStats) float64 { return float64(s.Unsaved) }),
		stat("roster_store_operations_total", "Store operations (round trips or pipelines).", prometheus.CounterValue, func(s session.StoreStats) float64 { return float64(s.Ops) }),
		stat("roster_store_latency_seconds_total", "Time spent in store operations, summed; divide by roster_store_operations_total.", prometheus.CounterValue, func(s session.StoreStats) float64 { return s.TotalLatency.Seconds() }),
		stat("roster_store_last_latency_seconds", "Duration of the last store operation.", prometheus.GaugeValue, func(s session.StoreStats) float64 { return s.LastLatency.Seconds() }),
	)
}

func (mt *metrics) request(status int) {
	if status < 100 || status > 599 {
		return
	}
	mt.byClass[status/100-1].Inc()
}

// collectorFunc is a Collector of one metric computed at scrape time.
type collectorFunc struct {
	desc    *prometheus.Desc
	collect func(chan<- prometheus.Metric)
}

func (c collectorFunc) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }
func (c collectorFunc) Collect(ch chan<- prometheus.Metric) { c.collect(ch) }
