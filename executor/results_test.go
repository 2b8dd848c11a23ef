package executor

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/ops"
	"github.com/baton-sched/baton/plan"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// blobGraph is one partition whose result is one record of n bytes.
func blobGraph(t *testing.T, n int) []byte {
	t.Helper()
	p, err := plan.Parse([]byte(fmt.Sprintf(`{"datasets": {"r": {"op": "range", "n": 1, "partitions": 1},
		"b": {"op": "mapPartitions", "input": "r", "fn": {"name": "chaos.blob", "args": {"bytes": %d}}}},
		"action": {"op": "collect", "input": "b"}}`, n)))
	if err != nil {
		t.Fatal(err)
	}
	c, err := plan.Start(p, plan.Options{Functions: ops.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	g, err := c.Graph()
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(g)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAResultOverMaxResultSizeIsNeitherSentNorStored: a result task
// whose result is bigger than its job's maxResultSize reports its size
// alone, finished and indirect, with no result in the report and none in
// the block store, whether it would have gone direct or indirect; one
// within it goes as -max-direct-result-size says. The results counter
// tells the three apart.
func TestAResultOverMaxResultSizeIsNeitherSentNorStored(t *testing.T) {
	f, addr := startFake(t, 1)
	reg := prometheus.NewRegistry()
	e, err := New(Options{ID: "x", DataDir: t.TempDir(), Schedulers: []string{addr}, Cores: 2, Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done; e.Close() })
	s := <-f.sessions
	const n = 1000
	size := int64(len(ops.AppendRecord(nil, ops.Record{Value: make([]byte, n)})))
	g := blobGraph(t, n)
	for _, tc := range []struct {
		task              uint64
		direct, maxResult int64
		want              string // direct, indirect or too_large
	}{
		{1, 1 << 16, size - 1, "too_large"}, // would have been direct
		{2, 10, size - 1, "too_large"},      // would have been stored
		{3, 1 << 16, size, "direct"},
		{4, 10, size, "indirect"},
	} {
		s.Send(&api.DriverMessage{Msg: &api.DriverMessage_Launch{Launch: &api.Launch{Tasks: []*api.TaskLaunch{{
			Id: &api.TaskID{Task: tc.task, Job: 7}, Term: 1, Graph: g, GraphKey: "blob", Node: 1,
			MaxDirectResultSize: tc.direct, MaxResultSize: tc.maxResult}}}}})
		waitFor(t, fmt.Sprintf("task %d to end", tc.task), func() bool { return f.finished()[tc.task] != nil })
		st := f.finished()[tc.task]
		if st.State != api.TaskState_TASK_STATE_FINISHED || st.ResultSize != size {
			t.Fatalf("task %d: %v, size %d, %q; want finished with size %d", tc.task, st.State, st.ResultSize, st.Message, size)
		}
		_, storeErr := e.store.Result(7, tc.task)
		stored := storeErr == nil
		switch tc.want {
		case "too_large":
			if !st.Indirect || st.Result != nil || stored {
				t.Errorf("task %d over maxResultSize: indirect %v, %d result bytes sent, stored %v; want its size alone", tc.task, st.Indirect, len(st.Result), stored)
			}
		case "direct":
			if st.Indirect || int64(len(st.Result)) != size || stored {
				t.Errorf("task %d: indirect %v, %d result bytes sent, stored %v; want it sent", tc.task, st.Indirect, len(st.Result), stored)
			}
		case "indirect":
			if !st.Indirect || st.Result != nil || !stored {
				t.Errorf("task %d: indirect %v, %d result bytes sent, stored %v (%v); want it stored", tc.task, st.Indirect, len(st.Result), stored, storeErr)
			}
		}
	}
	for kind, want := range map[string]float64{"direct": 1, "indirect": 1, "too_large": 2} {
		var m dto.Metric
		if err := e.metrics.results.WithLabelValues(kind).Write(&m); err != nil {
			t.Fatal(err)
		}
		if got := m.GetCounter().GetValue(); got != want {
			t.Errorf("baton_executor_results_total{kind=%q} = %v, want %v", kind, got, want)
		}
	}
}
