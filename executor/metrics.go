package executor

import (
	"github.com/baton-sched/baton/api"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are an executor's Prometheus series (execd serves them on
// -http-addr/metrics).
type metrics struct {
	launched prometheus.Counter
	ended    *prometheus.CounterVec
	// endedBy holds ended's counters by state (looked up once).
	endedBy map[string]prometheus.Counter // by state
	fenced  prometheus.Counter
	written prometheus.Counter
	fetched prometheus.Counter
	// results counts result tasks' results by where they went (kind):
	// direct, indirect or too_large.
	results  *prometheus.CounterVec
	fetchErr prometheus.Counter
	// cached counts reads of persisted datasets' partitions by outcome:
	// hit, miss (computed), unreadable (computed again).
	cached *prometheus.CounterVec
	// spilled counts the bytes tasks spilled (runs and segments).
	spilled prometheus.Counter
	// unhealthy is 1 while the executor says it should get no tasks.
	unhealthy prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, e *Executor) *metrics {
	m := &metrics{
		launched: prometheus.NewCounter(prometheus.CounterOpts{Name: "baton_executor_tasks_launched_total",
			Help: "Task launches this executor accepted."}),
		ended: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "baton_executor_tasks_ended_total",
			Help: "Task attempts that ended on this executor, by state (finished, failed, killed)."}, []string{"state"}),
		fenced: prometheus.NewCounter(prometheus.CounterOpts{Name: "baton_executor_fenced_total",
			Help: "Orders refused because they came from a deposed leader's term."}),
		written: prometheus.NewCounter(prometheus.CounterOpts{Name: "baton_shuffle_written_bytes_total",
			Help: "Shuffle bytes this executor's map tasks wrote to its block store."}),
		results: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "baton_executor_results_total",
			Help: "Results of result tasks, by where they went: direct (in the task's report, through the log), indirect (kept in the block store), too_large (over the job's maxResultSize: neither, only its size reported)."}, []string{"kind"}),
		fetched: prometheus.NewCounter(prometheus.CounterOpts{Name: "baton_shuffle_fetched_bytes_total",
			Help: "Shuffle bytes this executor's reduce tasks read, from its own store or other executors."}),
		fetchErr: prometheus.NewCounter(prometheus.CounterOpts{Name: "baton_fetch_failures_total",
			Help: "Shuffle fetches that failed (missing, corrupt or unreachable blocks) on this executor."}),
		cached: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "baton_executor_cached_reads_total",
			Help: "Reads of persisted datasets' partitions, by outcome: hit (read from the block store), miss (computed), unreadable (corrupt or failing: computed again)."}, []string{"outcome"}),
		spilled: prometheus.NewCounter(prometheus.CounterOpts{Name: "baton_executor_spilled_bytes_total",
			Help: "Bytes tasks wrote to spill runs because what they gathered passed their memory budget (execd -memory)."}),
		unhealthy: prometheus.NewGauge(prometheus.GaugeOpts{Name: "baton_executor_unhealthy",
			Help: "1 while the executor reports itself unhealthy (its disk is full, say) and takes no tasks."}),
	}
	m.endedBy = map[string]prometheus.Counter{}
	for _, s := range []string{"finished", "failed", "killed"} {
		m.endedBy[s] = m.ended.WithLabelValues(s)
	}
	for _, k := range []string{"direct", "indirect", "too_large"} {
		m.results.WithLabelValues(k)
	}
	for _, k := range []string{"hit", "miss", "unreadable"} {
		m.cached.WithLabelValues(k)
	}
	running := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "baton_executor_tasks_running",
		Help: "Tasks running on this executor."}, func() float64 {
		e.mu.Lock()
		defer e.mu.Unlock()
		return float64(len(e.running))
	})
	blocks := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "baton_blockstore_bytes",
		Help: "Bytes this executor's block store (Pebble) uses on disk."}, func() float64 {
		return float64(e.store.DiskUsage())
	})
	slots := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "baton_executor_slots",
		Help: "Task slots of this executor."}, func() float64 { return float64(e.opts.Cores) })
	reg.MustRegister(m.launched, m.ended, m.fenced, m.written, m.results, m.fetched, m.fetchErr, m.cached, m.spilled, m.unhealthy, running, blocks, slots)
	return m
}

// endedState names a final task state for the ended counter.
func endedState(s api.TaskState) string {
	switch s {
	case api.TaskState_TASK_STATE_FINISHED:
		return "finished"
	case api.TaskState_TASK_STATE_KILLED:
		return "killed"
	}
	return "failed"
}
