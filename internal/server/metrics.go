package server

import (
	"time"

	"net/http"

	"github.com/baton-sched/baton/dag"
	"github.com/baton-sched/baton/internal/buildinfo"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are a scheduler node's Prometheus series, served on
// -http-addr/metrics. Series read from the replicated state (jobs,
// stages, executors) are the same on every member; Raft series are this
// node's view; the driver's move on the leader.
type metrics struct {
	reg          *prometheus.Registry
	apply        prometheus.Histogram
	leaderChange prometheus.Counter
}

func newMetrics(s *Server) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.apply = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "baton_fsm_apply_seconds",
		Help:    "Time to decode and apply one Raft log entry to the scheduler state.",
		Buckets: prometheus.ExponentialBuckets(1e-6, 4, 12)})
	m.leaderChange = prometheus.NewCounter(prometheus.CounterOpts{Name: "baton_raft_leader_changes_total",
		Help: "Changes of leader this node observed (including to no leader)."})
	m.reg.MustRegister(m.apply, m.leaderChange, &stateCollector{s: s}, buildinfo.Collector(),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// stateCollector reads the Raft status and the replicated state at each
// scrape.
type stateCollector struct{ s *Server }

var (
	raftStateDesc   = prometheus.NewDesc("baton_raft_state", "This node's Raft state: 1 for the state it is in.", []string{"state"}, nil)
	raftTermDesc    = prometheus.NewDesc("baton_raft_term", "This node's current Raft term.", nil, nil)
	raftCommitDesc  = prometheus.NewDesc("baton_raft_commit_index", "This node's Raft commit index.", nil, nil)
	raftAppliedDesc = prometheus.NewDesc("baton_raft_applied_index", "The last Raft log index applied to this node's state.", nil, nil)
	raftLastDesc    = prometheus.NewDesc("baton_raft_last_index", "The last index in this node's Raft log.", nil, nil)
	raftContactDesc = prometheus.NewDesc("baton_raft_last_contact_seconds", "Seconds since this follower last heard from the leader (0 on the leader, -1 never).", nil, nil)
	raftSnapDesc    = prometheus.NewDesc("baton_raft_last_snapshot_index", "The log index of this node's latest snapshot.", nil, nil)
	jobsDesc        = prometheus.NewDesc("baton_jobs", "Retained jobs by state.", []string{"state"}, nil)
	stagesDesc      = prometheus.NewDesc("baton_stages", "Stages by state (waiting, running, failed, idle).", []string{"state"}, nil)
	executorsDesc   = prometheus.NewDesc("baton_executors", "Executors by state (alive, lost).", []string{"state"}, nil)
	epochDesc       = prometheus.NewDesc("baton_epoch", "The scheduler's map output epoch.", nil, nil)
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{raftStateDesc, raftTermDesc, raftCommitDesc, raftAppliedDesc, raftLastDesc, raftContactDesc, raftSnapDesc, jobsDesc, stagesDesc, executorsDesc, epochDesc} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	st := c.s.node.Status()
	for _, name := range []string{"Leader", "Follower", "Candidate", "Shutdown"} {
		v := 0.0
		if st.State == name {
			v = 1
		}
		gauge(raftStateDesc, v, lower(name))
	}
	gauge(raftTermDesc, float64(st.Term))
	gauge(raftCommitDesc, float64(st.CommitIndex))
	gauge(raftAppliedDesc, float64(st.AppliedIndex))
	gauge(raftLastDesc, float64(st.LastIndex))
	gauge(raftSnapDesc, float64(st.LastSnapshotIndex))
	contact := st.LastContact.Seconds()
	if st.LastContact < 0 {
		contact = -1
	}
	gauge(raftContactDesc, contact)
	jobs := map[string]int{}
	stages := map[string]int{}
	execs := map[string]int{"alive": 0, "lost": 0}
	var epoch uint64
	c.s.fsm.Read(func(s *dag.State) {
		for _, j := range s.Jobs() {
			jobs[j.Status.String()]++
		}
		for _, si := range s.Stages() {
			stages[string(si.State)]++
		}
		for _, e := range s.Executors() {
			if e.Alive {
				execs["alive"]++
			} else {
				execs["lost"]++
			}
		}
		epoch = s.Epoch()
	})
	for _, state := range []dag.JobStatus{dag.JobRunning, dag.JobSucceeded, dag.JobFailed, dag.JobCancelled} {
		gauge(jobsDesc, float64(jobs[state.String()]), state.String())
	}
	for _, state := range []dag.StageState{dag.StageWaiting, dag.StageRunning, dag.StageFailed, dag.StageIdle} {
		gauge(stagesDesc, float64(stages[string(state)]), string(state))
	}
	for state, n := range execs {
		gauge(executorsDesc, float64(n), state)
	}
	gauge(epochDesc, float64(epoch))
}

func lower(s string) string {
	b := []byte(s)
	if len(b) > 0 && b[0] >= 'A' && b[0] <= 'Z' {
		b[0] += 'a' - 'A'
	}
	return string(b)
}

// observeApply records an applied log entry's time.
func (m *metrics) observeApply(took time.Duration) { m.apply.Observe(took.Seconds()) }
