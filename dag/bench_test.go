package dag_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/baton-sched/baton/dag"
	"github.com/baton-sched/baton/plan"
)

// twoStageJob builds the commands of a whole two-stage job's life: executor
// registrations, the submission, every map task's success, every reduce
// task's success with a small direct result, and the release. Task ids,
// epochs and attempts are what a driver would send.
func twoStageJob(maps, reducers, executors int) (setup []dag.Command, mapEnds, reduceEnds []*dag.TaskEnded, release dag.Command) {
	for i := 0; i < executors; i++ {
		setup = append(setup, &dag.RegisterExecutor{ID: dag.ExecutorID(fmt.Sprintf("e%d", i)), Cores: 8})
	}
	g := &plan.Graph{
		Nodes: []plan.Node{
			{Name: "src", Op: "range", Partitions: maps},
			{Name: "pairs", Op: "map", Partitions: maps, Deps: []plan.Dep{{Kind: plan.OneToOne, Parent: 0}}},
			{Name: "counts", Op: "reduceByKey", Partitions: reducers, Deps: []plan.Dep{{Kind: plan.Shuffle, Parent: 1,
				Shuffle: &plan.ShuffleDep{Key: "bench", Partitioner: plan.Partitioner{Kind: "hash", Partitions: reducers}}}}},
		},
		Output: 2,
		Action: plan.GraphAction{Op: "collect"},
	}
	setup = append(setup, &dag.SubmitJob{Graph: g})
	var sizes []byte
	if reducers <= dag.MaxSizedReducers {
		sizes = bytes.Repeat([]byte{dag.CompressSize(4096)}, reducers)
	}
	task := dag.TaskID(1)
	for p := 0; p < maps; p++ {
		mapEnds = append(mapEnds, &dag.TaskEnded{Task: task, Stage: 0, Partition: p, Executor: dag.ExecutorID(fmt.Sprintf("e%d", p%executors)),
			Reason: dag.Success, MapBytes: 4096 * uint64(reducers), MapSizes: sizes})
		task++
	}
	result := []byte("0123456789abcdef0123456789abcdef")
	for p := 0; p < reducers; p++ {
		reduceEnds = append(reduceEnds, &dag.TaskEnded{Task: task, Stage: 1, Partition: p, Executor: dag.ExecutorID(fmt.Sprintf("e%d", p%executors)),
			Epoch: 1, Reason: dag.Success, Result: result, ResultSize: int64(len(result))})
		task++
	}
	return setup, mapEnds, reduceEnds, &dag.ReleaseJob{Job: 0}
}

// BenchmarkJobLifecycle applies the full lifecycle of a 10,000-task
// two-stage job to a fresh state per iteration and reports TaskEnded
// commands per second (target: >= 1,000,000 on one core). The variants
// differ in map output size reporting: per-reducer sizes (<= 2000
// reducers, as Spark's CompressedMapStatus) or totals only.
func BenchmarkJobLifecycle(b *testing.B) {
	for _, shape := range []struct{ maps, reducers int }{{5000, 5000}, {8000, 2000}, {9000, 1000}} {
		b.Run(fmt.Sprintf("maps=%d/reducers=%d", shape.maps, shape.reducers), func(b *testing.B) {
			setup, mapEnds, reduceEnds, release := twoStageJob(shape.maps, shape.reducers, 8)
			b.ReportAllocs()
			for b.Loop() {
				s := dag.New(dag.Config{})
				for _, c := range setup {
					s.Apply(c)
				}
				for _, c := range mapEnds {
					if r := s.Apply(c); r.Err != nil || r.Ignored != "" {
						b.Fatalf("map end: %+v", r)
					}
				}
				for _, c := range reduceEnds {
					if r := s.Apply(c); r.Err != nil || r.Ignored != "" {
						b.Fatalf("reduce end: %+v", r)
					}
				}
				if info, _ := s.Job(0); info.Status != dag.JobSucceeded {
					b.Fatalf("job %s", info.Status)
				}
				s.Apply(release)
			}
			tasks := float64(len(mapEnds) + len(reduceEnds))
			b.ReportMetric(tasks*float64(b.N)/b.Elapsed().Seconds(), "TaskEnded/s")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/tasks, "ns/TaskEnded")
		})
	}
}

// BenchmarkSnapshot encodes the state of a running 10,000-task job.
func BenchmarkSnapshot(b *testing.B) {
	setup, mapEnds, reduceEnds, _ := twoStageJob(5000, 5000, 8)
	s := dag.New(dag.Config{})
	for _, c := range setup {
		s.Apply(c)
	}
	for _, c := range mapEnds {
		s.Apply(c)
	}
	for _, c := range reduceEnds[:2500] {
		s.Apply(c)
	}
	var n int
	for b.Loop() {
		buf, err := s.MarshalBinary()
		if err != nil {
			b.Fatal(err)
		}
		n = len(buf)
	}
	b.ReportMetric(float64(n), "bytes")
}
