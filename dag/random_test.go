package dag_test

import (
	"bytes"
	"flag"
	"strings"
	"testing"

	"github.com/baton-sched/baton/dag"
	"github.com/baton-sched/baton/internal/dagtest"
)

var randomCommands = flag.Int("random-commands", 20000, "commands per randomized determinism run")

// TestRandomizedDeterminism applies one randomized stream of commands
// (jobs, task failures, fetch failures, lost executors and results,
// cancels, releases, duplicate and stale reports) to two states and checks
// that their snapshots are byte-identical, that the invariants hold after
// every command, that the epoch never decreases, and that a state restored
// from a mid-stream snapshot goes on exactly like the original.
func TestRandomizedDeterminism(t *testing.T) {
	for _, seed := range seeds() {
		cfg := dag.Config{RetainedJobs: 50}
		sim := dagtest.New(dagtest.Options{Seed: seed, Faults: 1, Config: cfg})
		a := dag.New(cfg)
		b := dag.New(cfg)
		final := map[dag.JobID]dag.JobStatus{}
		var restored *dag.State
		var epoch uint64
		stats := map[string]int{}
		n := *randomCommands
		if testing.Short() {
			n /= 10
		}
		for i := 0; i < n; i++ {
			cmd, want := sim.Next()
			ra, rb := a.Apply(cmd), b.Apply(cmd)
			if (ra.Err == nil) != (want.Err == nil) || (rb.Err == nil) != (want.Err == nil) {
				t.Fatalf("seed %d command %d %T: results differ: %v / %v / %v", seed, i, cmd, want.Err, ra.Err, rb.Err)
			}
			if restored != nil {
				restored.Apply(cmd)
			}
			if err := a.CheckInvariants(); err != nil {
				t.Fatalf("seed %d command %d %T %+v: invariants: %v", seed, i, cmd, cmd, err)
			}
			if a.Epoch() < epoch {
				t.Fatalf("seed %d command %d: epoch went back", seed, i)
			}
			epoch = a.Epoch()
			countCommand(stats, cmd, ra)
			if i%50 == 0 {
				for _, j := range a.Jobs() {
					final[j.ID] = j.Status
				}
			}
			if i == n/2 {
				snap, err := a.MarshalBinary()
				if err != nil {
					t.Fatal(err)
				}
				if restored, err = dag.Unmarshal(snap); err != nil {
					t.Fatalf("seed %d: restore mid-stream: %v", seed, err)
				}
			}
		}
		// Liveness: without faults, every job ends.
		sim.Drain()
		for i := 0; sim.Running() > 0; i++ {
			if i > 100000 {
				t.Fatalf("seed %d: %d jobs still running after draining", seed, sim.Running())
			}
			cmd, _ := sim.Next()
			a.Apply(cmd)
			b.Apply(cmd)
			restored.Apply(cmd)
		}
		sa, _ := a.MarshalBinary()
		sb, _ := b.MarshalBinary()
		sr, _ := restored.MarshalBinary()
		if !bytes.Equal(sa, sb) {
			t.Fatalf("seed %d: two states that applied the same commands differ", seed)
		}
		if !bytes.Equal(sa, sr) {
			t.Fatalf("seed %d: the state restored mid-stream differs from the original", seed)
		}
		for _, st := range final {
			stats["job-"+st.String()]++
		}
		t.Logf("seed %d: %d commands, snapshot %d bytes, epoch %d: %v", seed, n, len(sa), a.Epoch(), stats)
		for _, k := range []string{"submit", "success", "exception", "fetch-failed", "executor-lost", "cancel", "release", "resubmit", "job-failed", "job-succeeded", "map-stage", "coalesced"} {
			if stats[k] == 0 {
				t.Errorf("seed %d: the stream never exercised %s", seed, k)
			}
		}
	}
}

func countCommand(stats map[string]int, cmd dag.Command, r dag.Result) {
	switch c := cmd.(type) {
	case *dag.SubmitJob:
		stats["submit"]++
		if c.MapStage && r.Err == nil {
			stats["map-stage"]++
		}
	case *dag.TaskEnded:
		switch c.Reason {
		case dag.Success:
			stats["success"]++
		case dag.Exception:
			stats["exception"]++
		case dag.FetchFailed:
			stats["fetch-failed"]++
		default:
			stats["other-failure"]++
		}
		if r.Ignored != "" {
			stats["ignored"]++
		}
	case *dag.RemoveExecutor:
		stats["executor-lost"]++
	case *dag.CancelJob:
		stats["cancel"]++
	case *dag.ReleaseJob:
		stats["release"]++
	case *dag.ResubmitFailedStages:
		stats["resubmit"]++
	}
	for _, e := range r.Events {
		if e.Kind == dag.StageSubmitted && strings.HasPrefix(e.Message, "coalesced") {
			stats["coalesced"]++
		}
	}
}

var randomSeeds = flag.Int("random-seeds", 3, "seeds for the randomized determinism test")

func seeds() []uint64 {
	out := make([]uint64, *randomSeeds)
	for i := range out {
		out[i] = uint64(i + 1)
	}
	return out
}
