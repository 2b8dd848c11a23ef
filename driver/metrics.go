package driver

import (
	"time"

	"github.com/baton-sched/baton/dag"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the driver's Prometheus series. They move only on the
// leader (the driver is idle elsewhere), except leadership counts.
type metrics struct {
	launched    prometheus.Counter
	finished    *prometheus.CounterVec // by reason
	byReason    map[dag.Reason]prometheus.Counter
	batch       prometheus.Histogram
	leaderships prometheus.Counter
	takeover    prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer, d *Driver) *metrics {
	m := &metrics{
		launched: prometheus.NewCounter(prometheus.CounterOpts{Name: "baton_tasks_launched_total",
			Help: "Task attempts launched by this node's driver (speculative copies included)."}),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "baton_tasks_finished_total",
			Help: "Task attempt ends logged by this node's driver, by reason (success, exception, fetch_failed, killed, executor_lost, result_lost, commit_denied)."}, []string{"reason"}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "baton_status_update_batch_size",
			Help:    "Task ends in one batch of status updates proposed to the log.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12)}),
		leaderships: prometheus.NewCounter(prometheus.CounterOpts{Name: "baton_leaderships_total",
			Help: "Times this node's driver took over (won an election and passed its barrier)."}),
		takeover: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "baton_takeover_seconds",
			Help:    "From this node's driver taking over to its first scheduling round past the grace period (every executor back, or the grace period over).",
			Buckets: []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}}),
	}
	m.byReason = map[dag.Reason]prometheus.Counter{}
	for _, r := range dag.Reasons {
		m.byReason[r] = m.finished.WithLabelValues(r.Label())
	}
	running := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "baton_tasks_running",
		Help: "Task attempts running under this node's driver (0 on followers)."}, func() float64 {
		n := 0
		if l := d.current(); l != nil {
			l.ask(func() {
				for _, a := range l.attempts {
					if !a.reported {
						n++
					}
				}
			})
		}
		return float64(n)
	})
	reg.MustRegister(m.launched, m.finished, m.batch, m.leaderships, m.takeover, running, &heartbeatAges{d: d})
	return m
}

// heartbeatAges collects the time since each executor was last heard of,
// on the leader.
type heartbeatAges struct{ d *Driver }

var heartbeatAgeDesc = prometheus.NewDesc("baton_executor_heartbeat_age_seconds",
	"Seconds since the leader last heard from each executor it watches (only on the leader).", []string{"executor"}, nil)

func (h *heartbeatAges) Describe(ch chan<- *prometheus.Desc) { ch <- heartbeatAgeDesc }

func (h *heartbeatAges) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	for id, t := range h.d.LastHeartbeat() {
		ch <- prometheus.MustNewConstMetric(heartbeatAgeDesc, prometheus.GaugeValue, now.Sub(t).Seconds(), id)
	}
}

// finishedBy is finished's counter for a reason (looked up once).
func (m *metrics) finishedBy(r dag.Reason) prometheus.Counter {
	if c, ok := m.byReason[r]; ok {
		return c
	}
	return m.finished.WithLabelValues(r.Label())
}
