package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/dag"
	"github.com/baton-sched/baton/ops"
	"github.com/baton-sched/baton/plan"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// memJobs is a replicated state in memory and a log that applies to it at
// once: the submitter's stateReader and jobRunner without Raft. Sampling
// jobs do not run; their results are what sample says each partition of
// the job's graph would sample.
type memJobs struct {
	mu    sync.Mutex
	st    *dag.State
	index uint64
	log   []dag.Command
	// sample returns one partition's keys of a sampling job's graph.
	sample func(g *plan.Graph, partition int) []string
	// failPropose, when set, fails every proposal of a sampling job.
	failPropose error
	// failSample, when set, is a sampling job's end.
	failSample error
}

func newMemJobs() *memJobs { return &memJobs{st: dag.New(dag.Config{})} }

func (m *memJobs) Read(fn func(st *dag.State)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	fn(m.st)
}

func (m *memJobs) Applied() (uint64, uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.index, 1
}

func (m *memJobs) propose(ctx context.Context, cmd dag.Command) (dag.Result, uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if sj, ok := cmd.(*dag.SubmitJob); ok && sj.Graph.Action.Op == "sampleKeys" && m.failPropose != nil {
		return dag.Result{}, 0, m.failPropose
	}
	m.index++
	m.log = append(m.log, cmd)
	r := m.st.Apply(cmd)
	if r.Err != nil {
		return r, m.index, rpcError(r.Err)
	}
	return r, m.index, nil
}

func (m *memJobs) readResults(ctx context.Context, id dag.JobID, fn func(int, []byte) error) error {
	m.mu.Lock()
	info, ok := m.st.Job(id)
	m.mu.Unlock()
	if !ok {
		return status.Errorf(codes.NotFound, "job %d not found", id)
	}
	if m.failSample != nil {
		return m.failSample
	}
	for p := 0; p < info.Graph.Nodes[info.Graph.Output].Partitions; p++ {
		keys := m.sample(info.Graph, p)
		b := ops.AppendRecord(nil, ops.Record{Value: fmt.Appendf(nil, "%d", len(keys))})
		for _, k := range keys {
			b = ops.AppendRecord(b, ops.Record{Key: []byte(k), HasKey: true})
		}
		if err := fn(p, b); err != nil {
			return err
		}
	}
	return nil
}

func (m *memJobs) release(ctx context.Context, id dag.JobID) error {
	_, _, err := m.propose(ctx, &dag.ReleaseJob{Job: id})
	return err
}

// logged lists the log's commands as "submit <action> <key>" and
// "release <job>".
func (m *memJobs) logged() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, c := range m.log {
		switch c := c.(type) {
		case *dag.SubmitJob:
			out = append(out, fmt.Sprintf("submit %s %q", c.Graph.Action.Op, c.Key))
		case *dag.ReleaseJob:
			out = append(out, fmt.Sprintf("release %d", c.Job))
		default:
			out = append(out, fmt.Sprintf("%T", c))
		}
	}
	return out
}

func newSubmitter(m *memJobs) *submitter {
	return &submitter{state: m, jobs: m, opts: submitOptions{Limits: DefaultLimits(),
		Defaults: JobDefaults{MaxTaskFailures: 4, MaxResultSize: 1 << 20}, Functions: ops.NewRegistry()}}
}

func request(t *testing.T, src string) *api.SubmitJobRequest {
	t.Helper()
	p, err := plan.Parse([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return &api.SubmitJobRequest{Plan: api.PlanToProto(p)}
}

// sortPlan sorts 2 partitions of 6 records into 3.
const sortPlan = `{"datasets": {
	"r": {"op": "parallelize", "partitions": 2, "records": [["f","1"],["b","2"],["d","3"],["a","4"],["e","5"],["c","6"]]},
	"s": {"op": "sortByKey", "input": "r", "partitions": 3}},
	"action": {"op": "collect", "input": "s"}}`

// TestASortIsSampledBeforeItIsCompiled: submitting a sortByKey runs a
// sampling job of the sort's input first, in the submission's pool with
// its limits and a key derived from its own, then logs the job with the
// bounds the sample gave, then releases the sampling job.
func TestASortIsSampledBeforeItIsCompiled(t *testing.T) {
	m := newMemJobs()
	m.sample = func(g *plan.Graph, p int) []string {
		if g.Action.N <= 0 {
			t.Errorf("sampling job's action samples %d keys", g.Action.N)
		}
		return [][]string{{"f", "b", "d"}, {"a", "e", "c"}}[p]
	}
	req := request(t, sortPlan)
	req.IdempotencyKey, req.Pool, req.MaxTaskFailures = "k1", "etl", 7
	resp, err := newSubmitter(m).Submit(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	sid := dag.JobID(resp.JobId - 1) // the sampling job came just before
	want := []string{`submit sampleKeys "k1/sample/0"`, `submit collect "k1"`, fmt.Sprintf("release %d", sid)}
	if got := m.logged(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("log = %q, want %q", got, want)
	}
	var sampling, job dag.JobInfo
	m.Read(func(st *dag.State) { sampling, _ = st.Job(sid); job, _ = st.Job(dag.JobID(resp.JobId)) })
	if sampling.Pool != "etl" || job.Pool != "etl" || job.Key != "k1" {
		t.Errorf("pools %q %q, key %q", sampling.Pool, job.Pool, job.Key)
	}
	part := job.Graph.Nodes[job.Graph.Output].Deps[0].Shuffle.Partitioner
	if part.Kind != "range" || len(part.Bounds) != 2 || string(part.Bounds[0]) >= string(part.Bounds[1]) {
		t.Fatalf("sort's partitioner = %+v, want 2 ascending sampled bounds", part)
	}
	for _, b := range part.Bounds {
		if !strings.Contains("abcdef", string(b)) || len(b) != 1 {
			t.Errorf("bound %q is not a sampled key", b)
		}
	}
	if resp.Index != 2 {
		t.Errorf("index %d, want the job's entry, 2", resp.Index)
	}
}

// TestABadPlanRunsNoSamplingJob: every problem of a plan is found before
// a sampling job runs; nothing is logged.
func TestABadPlanRunsNoSamplingJob(t *testing.T) {
	m := newMemJobs()
	m.sample = func(*plan.Graph, int) []string { t.Error("sampled a bad plan"); return nil }
	req := request(t, `{"datasets": {
		"r": {"op": "parallelize", "partitions": 2, "records": [["f","1"]]},
		"s": {"op": "sortByKey", "input": "r", "partitions": 3},
		"m": {"op": "map", "input": "s", "fn": "noSuchFunction"}},
		"action": {"op": "collect", "input": "m"}}`)
	_, err := newSubmitter(m).Submit(context.Background(), req)
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "noSuchFunction") {
		t.Fatalf("Submit = %v, want InvalidArgument naming the function", err)
	}
	if got := m.logged(); len(got) != 0 {
		t.Fatalf("a bad plan logged %q", got)
	}
}

// TestASamplingFailureKeepsItsClass: a sampling job that cannot be logged
// (no leader) is Unavailable, which clients retry, and one that failed is
// FailedPrecondition — neither is a bad plan (InvalidArgument).
func TestASamplingFailureKeepsItsClass(t *testing.T) {
	for _, tc := range []struct {
		name          string
		propose, read error
		want          codes.Code
	}{
		{"not leader", status.Error(codes.Unavailable, "raftnet: not the leader; retry"), nil, codes.Unavailable},
		{"sampling job failed", nil, status.Error(codes.FailedPrecondition, "job 1 has failed: boom"), codes.FailedPrecondition},
	} {
		m := newMemJobs()
		m.failPropose, m.failSample = tc.propose, tc.read
		_, err := newSubmitter(m).Submit(context.Background(), request(t, sortPlan))
		var se *plan.SamplingError
		if status.Code(err) != tc.want || !errors.As(err, &se) || se.Dataset != "s" {
			t.Errorf("%s: Submit = %v (code %v), want %v from a SamplingError of s", tc.name, err, status.Code(err), tc.want)
		}
		for _, l := range m.logged() {
			if strings.HasPrefix(l, "submit collect") {
				t.Errorf("%s: the job was logged: %q", tc.name, m.logged())
			}
		}
	}
}

// panicResolver fails a test that lists files.
type panicResolver struct{ t *testing.T }

func (r panicResolver) TextFileSplits(string, int) ([]plan.Split, error) {
	r.t.Error("files listed")
	return nil, errors.New("no")
}

// TestARetryGetsItsJob: a submission whose key made a job gets that job,
// without compiling (no file is listed) or logging anything.
func TestARetryGetsItsJob(t *testing.T) {
	m := newMemJobs()
	sb := newSubmitter(m)
	req := request(t, `{"datasets": {"t": {"op": "textFile", "path": "/in/*"}}, "action": {"op": "count", "input": "t"}}`)
	req.IdempotencyKey = "again"
	g := &plan.Graph{Nodes: []plan.Node{{Name: "r", Op: "range", Partitions: 1, Params: []byte(`{"n":1}`)}}, Action: plan.GraphAction{Op: "count"}}
	r, _, err := m.propose(context.Background(), &dag.SubmitJob{Graph: g, Key: "again"})
	if err != nil {
		t.Fatal(err)
	}
	sb.opts.Resolver = panicResolver{t}
	resp, err := sb.Submit(context.Background(), req)
	if err != nil || resp.JobId != uint64(r.Job) || resp.Index != 1 {
		t.Fatalf("retry = %+v, %v; want job %d at index 1", resp, err, r.Job)
	}
	if n := len(m.logged()); n != 1 {
		t.Fatalf("the retry logged %d commands", n-1)
	}
}

// TestAdmissionRefusesBeforeDecoding: too many running jobs is
// ResourceExhausted, an oversized plan InvalidArgument naming the flag;
// neither logs anything. A plan that sets no limits gets the node's.
func TestAdmissionRefusesBeforeDecoding(t *testing.T) {
	m := newMemJobs()
	sb := newSubmitter(m)
	sb.opts.Limits.MaxPendingJobs = 1
	small := `{"datasets": {"r": {"op": "range", "n": 10, "partitions": 2}}, "action": {"op": "count", "input": "r"}}`
	resp, err := sb.Submit(context.Background(), request(t, small))
	if err != nil {
		t.Fatal(err)
	}
	var info dag.JobInfo
	m.Read(func(st *dag.State) { info, _ = st.Job(dag.JobID(resp.JobId)) })
	if info.MaxTaskFailures != 4 || info.MaxResultSize != 1<<20 {
		t.Errorf("job limits %d, %d; want the node's defaults 4 and 1 MiB", info.MaxTaskFailures, info.MaxResultSize)
	}
	if _, err := sb.Submit(context.Background(), request(t, small)); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("second running job: %v, want ResourceExhausted", err)
	}
	sb.opts.Limits.MaxPendingJobs = 10
	sb.opts.Limits.MaxPlanBytes = 10
	if _, err := sb.Submit(context.Background(), request(t, small)); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "-max-plan-bytes") {
		t.Errorf("oversized plan: %v", err)
	}
	if n := len(m.logged()); n != 1 {
		t.Fatalf("refusals logged %d commands", n-1)
	}
}

// TestPartitionsOutOfRangeAreRefusedBeforeTheLog: a submission naming a
// partition its job's output does not have (past the count, negative),
// one twice, or out of order is refused with InvalidArgument naming the
// partition and the count, before anything is logged: no job, and for a
// sort no sampling job either. A subset in range is logged as asked.
func TestPartitionsOutOfRangeAreRefusedBeforeTheLog(t *testing.T) {
	const rangePlan = `{"datasets": {"r": {"op": "range", "n": 10, "partitions": 4}}, "action": {"op": "collect", "input": "r"}}`
	for _, tc := range []struct {
		name, plan string
		parts      []int32
		want       []string
	}{
		{"past the count", rangePlan, []int32{0, 4}, []string{"partition 4 is out of range", `"r"`, "has 4 partitions, 0 to 3"}},
		{"far past the count", rangePlan, []int32{1 << 30}, []string{"partition 1073741824 is out of range", "has 4 partitions"}},
		{"negative", rangePlan, []int32{-1, 2}, []string{"partition -1 is out of range", "has 4 partitions"}},
		{"twice", rangePlan, []int32{1, 2, 1}, []string{"partition 1 is asked for twice"}},
		{"twice in a row", rangePlan, []int32{3, 3}, []string{"partition 3 is asked for twice"}},
		{"out of order", rangePlan, []int32{2, 0}, []string{"ascending", "0 comes after 2"}},
		{"a sort's, past its count", sortPlan, []int32{3}, []string{"partition 3 is out of range", `"s"`, "has 3 partitions, 0 to 2"}},
		{"a sort's, negative", sortPlan, []int32{-2}, []string{"partition -2 is out of range", "has 3 partitions"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newMemJobs()
			m.sample = func(*plan.Graph, int) []string { t.Error("a sampling job ran"); return nil }
			req := request(t, tc.plan)
			req.SomePartitions, req.Partitions = true, tc.parts
			_, err := newSubmitter(m).Submit(context.Background(), req)
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("Submit = %v (code %v), want InvalidArgument", err, status.Code(err))
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Submit = %v, want it to say %q", err, w)
				}
			}
			if got := m.logged(); len(got) != 0 {
				t.Fatalf("a refused submission logged %q", got)
			}
		})
	}
	// In range: the job is logged with the partitions asked for.
	m := newMemJobs()
	m.sample = func(g *plan.Graph, p int) []string { return [][]string{{"f", "b", "d"}, {"a", "e", "c"}}[p] }
	for _, src := range []string{rangePlan, sortPlan} {
		req := request(t, src)
		req.SomePartitions, req.Partitions = true, []int32{0, 2}
		resp, err := newSubmitter(m).Submit(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		var info dag.JobInfo
		m.Read(func(st *dag.State) { info, _ = st.Job(dag.JobID(resp.JobId)) })
		if info.Tasks != 2 {
			t.Errorf("%s: the job has %d tasks, want the 2 partitions asked for", info.Graph.Action.Op, info.Tasks)
		}
	}
}

// TestAJobTooLargeForALogEntryIsRefused: a compiled job's graph grows
// past its plan (here a sort's sampled bounds: 199 keys of 32 KiB, 6 MiB
// from a plan of a few hundred bytes); one larger than a log entry is
// refused, naming the dataset, before anything is logged. (It used to be
// proposed as one entry of any size: a textFile of a million splits made
// an entry of 100 MB for every replica.)
func TestAJobTooLargeForALogEntryIsRefused(t *testing.T) {
	const plan200 = `{"datasets": {
	"r": {"op": "parallelize", "partitions": 2, "records": [["f","1"],["b","2"]]},
	"s": {"op": "sortByKey", "input": "r", "partitions": 200}},
	"action": {"op": "collect", "input": "s"}}`
	m := newMemJobs()
	m.sample = func(g *plan.Graph, p int) []string {
		var keys []string
		for i := 0; i < 200; i++ {
			keys = append(keys, fmt.Sprintf("%05d%d%s", i, p, strings.Repeat("k", 32<<10)))
		}
		return keys
	}
	_, err := newSubmitter(m).Submit(context.Background(), request(t, plan200))
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "(with 0 partitions named), over the 4128768 bytes one log entry carries") || !strings.Contains(err.Error(), `dataset "s" (sortByKey, 200 partitions)`) {
		t.Fatalf("Submit = %v (code %v), want InvalidArgument naming the size and the dataset", err, status.Code(err))
	}
	// The sampling job and its release only: not the job.
	if got := m.logged(); len(got) != 2 || !strings.HasPrefix(got[0], "submit sampleKeys") || !strings.HasPrefix(got[1], "release") {
		t.Fatalf("a refused submission logged %q", got)
	}
}
