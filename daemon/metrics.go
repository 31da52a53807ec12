package daemon

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rosterhq/roster/session"
)

// metrics are the daemon's Prometheus collectors. Manager counters are read
// from Manager.Stats at scrape time, so they cost nothing on the hot path.
type metrics struct {
	requests *prometheus.CounterVec
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
	for _, c := range []string{"1xx", "2xx", "3xx", "4xx", "5xx"} {
		mt.requests.WithLabelValues(c)
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
	mt.requests.WithLabelValues([]string{"1xx", "2xx", "3xx", "4xx", "5xx"}[status/100-1]).Inc()
}

// collectorFunc is a Collector of one metric computed at scrape time.
type collectorFunc struct {
	desc    *prometheus.Desc
	collect func(chan<- prometheus.Metric)
}

func (c collectorFunc) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }
func (c collectorFunc) Collect(ch chan<- prometheus.Metric) { c.collect(ch) }
