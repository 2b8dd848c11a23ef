package propose

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/baton-sched/baton/dag"
	"github.com/baton-sched/baton/fsm"
)

// BenchmarkQuorumThroughput measures committed commands per second through
// a three-node quorum: real TCP on loopback, bbolt with fsync on every
// write, each command a small status-update-sized command. The baseline
// proposes one command per entry and waits for each (what a naive driver
// would do); the batched run proposes from 64 goroutines through a
// Proposer, which groups them into few entries.
func BenchmarkQuorumThroughput(b *testing.B) {
	b.Run("one-at-a-time", func(b *testing.B) {
		c := newCluster(b, 3)
		_, leader := c.leader()
		i := 0
		for b.Loop() {
			data, err := fsm.Encode(time.Now().UnixNano(), []dag.Command{benchCommand(i)})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := leader.Apply(data, 5*time.Second); err != nil {
				b.Fatal(err)
			}
			i++
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commands/s")
	})
	b.Run("batched", func(b *testing.B) {
		c := newCluster(b, 3)
		_, leader := c.leader()
		p := New(leader, Options{})
		defer p.Close()
		before := leader.Raft().LastIndex()
		var next atomic.Int64
		b.ResetTimer()
		var wg sync.WaitGroup
		for w := 0; w < 64; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1)) - 1
					if i >= b.N {
						return
					}
					if _, err := p.Propose(context.Background(), benchCommand(i)); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		b.StopTimer()
		entries := leader.Raft().LastIndex() - before
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commands/s")
		b.ReportMetric(float64(b.N)/float64(max(entries, 1)), "commands/entry")
	})
}

// benchCommand is a status-update-sized command: a task of a stage that
// does not exist ends (the state ignores it, as it would a late report).
func benchCommand(i int) dag.Command {
	return &dag.TaskEnded{Task: dag.TaskID(i + 1), Stage: 1 << 40, Partition: i % 100, Executor: dag.ExecutorID(fmt.Sprintf("exec-%d", i%8)), Reason: dag.Success, MapBytes: 1 << 20}
}
