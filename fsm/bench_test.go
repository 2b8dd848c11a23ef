package fsm

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/baton-sched/baton/dag"
	"github.com/baton-sched/baton/plan"
	"github.com/hashicorp/raft"
)

// jobCommands returns the commands of a whole 10,000-task two-stage job.
func jobCommands() []dag.Command {
	const maps, reducers, execs = 5000, 5000, 8
	var cmds []dag.Command
	for i := 0; i < execs; i++ {
		cmds = append(cmds, &dag.RegisterExecutor{ID: dag.ExecutorID(fmt.Sprintf("e%d", i)), Addr: "127.0.0.1:1", Cores: 8})
	}
	cmds = append(cmds, &dag.SubmitJob{Graph: &plan.Graph{
		Nodes: []plan.Node{
			{Name: "src", Op: "range", Partitions: maps},
			{Name: "counts", Op: "reduceByKey", Partitions: reducers, Deps: []plan.Dep{{Kind: plan.Shuffle, Parent: 0,
				Shuffle: &plan.ShuffleDep{Key: "bench", Partitioner: plan.Partitioner{Kind: "hash", Partitions: reducers}}}}},
		},
		Output: 1, Action: plan.GraphAction{Op: "collect"},
	}})
	task := dag.TaskID(1)
	for p := 0; p < maps; p++ {
		cmds = append(cmds, &dag.TaskEnded{Task: task, Stage: 0, Partition: p, Executor: dag.ExecutorID(fmt.Sprintf("e%d", p%execs)),
			Reason: dag.Success, MapBytes: 1 << 20})
		task++
	}
	result := []byte("0123456789abcdef0123456789abcdef")
	for p := 0; p < reducers; p++ {
		cmds = append(cmds, &dag.TaskEnded{Task: task, Stage: 1, Partition: p, Executor: dag.ExecutorID(fmt.Sprintf("e%d", p%execs)),
			Epoch: 1, Reason: dag.Success, Result: result, ResultSize: int64(len(result))})
		task++
	}
	return cmds
}

// BenchmarkApply applies a 10,000-task job's commands through the FSM
// (decode and apply) in log entries of 1, 64 and 1024 commands, and
// reports commands per second. Batch 1 is the baseline: one entry per
// status update. In these entries consecutive ends come from different
// executors, so none are packed; "1024-by-executor" holds them as the
// driver proposes them, each executor's report batch together, packed
// (see packed.go).
func BenchmarkApply(b *testing.B) {
	cmds := jobCommands()
	for _, batch := range []int{1, 64, 1024, -1024} {
		name := fmt.Sprintf("batch=%d", batch)
		if batch < 0 {
			batch = -batch
			name = fmt.Sprintf("batch=%d-by-executor", batch)
		}
		b.Run(name, func(b *testing.B) {
			var logs []*raft.Log
			for i := 0; i < len(cmds); i += batch {
				entry := cmds[i:min(i+batch, len(cmds))]
				if name != fmt.Sprintf("batch=%d", batch) {
					entry = slices.Clone(entry)
					slices.SortStableFunc(entry, func(x, y dag.Command) int {
						a, _ := x.(*dag.TaskEnded)
						c, _ := y.(*dag.TaskEnded)
						if a == nil || c == nil {
							return 0
						}
						if a.Stage != c.Stage { // reducers end after the maps
							return int(a.Stage) - int(c.Stage)
						}
						return strings.Compare(string(a.Executor), string(c.Executor))
					})
				}
				data, err := Encode(int64(i), entry)
				if err != nil {
					b.Fatal(err)
				}
				logs = append(logs, &raft.Log{Index: uint64(len(logs) + 1), Term: 1, Type: raft.LogCommand, Data: data})
			}
			b.ReportAllocs()
			for b.Loop() {
				f := New(Options{})
				// Raft hands the FSM up to MaxAppendEntries (64) entries at a time.
				for i := 0; i < len(logs); i += 64 {
					f.ApplyBatch(logs[i:min(i+64, len(logs))])
				}
				f.Read(func(s *dag.State) {
					if j, _ := s.Job(0); j.Status != dag.JobSucceeded {
						b.Fatalf("job %s", j.Status)
					}
				})
			}
			b.ReportMetric(float64(len(cmds))*float64(b.N)/b.Elapsed().Seconds(), "commands/s")
			b.ReportMetric(float64(len(logs)), "entries")
			bytes := 0
			for _, l := range logs {
				bytes += len(l.Data)
			}
			b.ReportMetric(float64(bytes)/float64(len(cmds)), "log-bytes/command")
		})
	}
}
