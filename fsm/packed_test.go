package fsm

import (
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/baton-sched/baton/dag"
	"github.com/baton-sched/baton/fsm/fsmpb"
	"google.golang.org/protobuf/proto"
)

// encodeUnpacked is the encoding without packing: one command each.
func encodeUnpacked(t testing.TB, now int64, cmds []dag.Command) []byte {
	var pcs []*fsmpb.Command
	for _, c := range cmds {
		pc, err := encodeCommand(c)
		if err != nil {
			t.Fatal(err)
		}
		pcs = append(pcs, pc)
	}
	b, err := encodeEntry(now, pcs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// randomEnds returns a batch as drivers propose them: mostly successes
// of a few stage attempts from a few executors, with failures, ends
// carrying what packing leaves out, and other commands between.
func randomEnds(rng *rand.Rand, n int) []dag.Command {
	var cmds []dag.Command
	task := uint64(1 << 40)
	for range n {
		task += uint64(1 + rng.IntN(3))
		if rng.IntN(7) == 0 {
			task -= uint64(rng.IntN(5)) // ids need not ascend
		}
		te := &dag.TaskEnded{Task: dag.TaskID(task), Stage: dag.StageID(rng.IntN(2)), StageAttempt: rng.IntN(2), Partition: rng.IntN(5000),
			Attempt: rng.IntN(2) * rng.IntN(4), Executor: dag.ExecutorID([]string{"e1", "e2"}[rng.IntN(2)]), Epoch: uint64(rng.IntN(2)), Reason: dag.Success,
			DurationMs: int64(rng.IntN(3) * rng.IntN(100)), SpilledBytes: int64(rng.IntN(4)/3) * int64(rng.IntN(1<<20))}
		switch rng.IntN(3) {
		case 0: // a map task
			te.MapBytes = uint64(rng.IntN(1 << 20))
			if rng.IntN(2) == 0 {
				te.MapSizes = make([]byte, rng.IntN(8))
				for i := range te.MapSizes {
					te.MapSizes[i] = byte(rng.IntN(256))
				}
			}
		case 1: // a result task
			te.ResultSize = int64(rng.IntN(100))
			if rng.IntN(3) == 0 {
				te.Indirect = true
			} else if te.ResultSize > 0 {
				te.Result = []byte(strings.Repeat("r", int(te.ResultSize)))
			} else {
				te.Result = []byte{} // an empty direct result, as the driver logs it
			}
		}
		te.Speculative = rng.IntN(10) == 0
		switch rng.IntN(20) {
		case 0:
			te.Reason, te.Message = dag.Exception, "boom"
		case 1:
			te.Reason, te.FetchExecutor, te.FetchMap, te.FetchReduce = dag.FetchFailed, "e2", 3, 4
		case 2:
			te.Accumulators = []dag.Accumulator{{Name: "n", Kind: 1, Int: 2}}
		case 3:
			te.Cached = []dag.CachedPartition{{Key: "k", Partition: te.Partition, Bytes: 9, Gen: 1}}
		case 4:
			cmds = append(cmds, &dag.CancelJob{Job: dag.JobID(rng.IntN(3))})
		}
		cmds = append(cmds, te)
	}
	return cmds
}

// TestPackedEndsDecodeAsTheyWereProposed: whatever a batch holds, the
// packed entry decodes to exactly the commands the one-command-each
// entry does, in order, and is smaller when runs were packed.
func TestPackedEndsDecodeAsTheyWereProposed(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	packedRuns := 0
	for round := range 300 {
		cmds := randomEnds(rng, 1+rng.IntN(400))
		if round%50 == 0 {
			// One long run of one stage attempt and executor, past
			// maxPackedRun.
			cmds = nil
			for i := range maxPackedRun + 10 {
				cmds = append(cmds, &dag.TaskEnded{Task: dag.TaskID(i + 1), Partition: i, Executor: "e1", Reason: dag.Success, Result: []byte{byte(i)}, ResultSize: 1})
			}
		}
		packed, err := Encode(5, cmds)
		if err != nil {
			t.Fatal(err)
		}
		plain := encodeUnpacked(t, 5, cmds)
		got, err := Decode(packed)
		if err != nil {
			t.Fatalf("round %d: packed entry: %v", round, err)
		}
		want, err := Decode(plain)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Commands) != len(cmds) || len(got.Members) != len(cmds) || len(got.ACL) != len(cmds) || len(got.Leaders) != len(cmds) {
			t.Fatalf("round %d: %d commands (%d members, %d acl, %d leaders) decoded of %d", round, len(got.Commands), len(got.Members), len(got.ACL), len(got.Leaders), len(cmds))
		}
		for i := range want.Commands {
			if !reflect.DeepEqual(got.Commands[i], want.Commands[i]) {
				t.Fatalf("round %d, command %d: packed decodes as\n%+v\nwant\n%+v", round, i, got.Commands[i], want.Commands[i])
			}
		}
		var e fsmpb.Entry
		body, _ := unframe(packed)
		if err := proto.Unmarshal(body, &e); err != nil {
			t.Fatal(err)
		}
		for _, pc := range e.Commands {
			if pc.Type == fsmpb.Type_TYPE_TASKS_ENDED {
				packedRuns++
			}
		}
		if len(e.Commands) < len(cmds) && len(packed) >= len(plain) {
			t.Fatalf("round %d: packed entry of %d bytes is not smaller than the plain one (%d)", round, len(packed), len(plain))
		}
	}
	if packedRuns < 100 {
		t.Fatalf("only %d packed runs in 300 batches", packedRuns)
	}
}

// TestACorruptPackedRunIsAnError: arrays that do not match the tasks,
// lengths that do not account for the bytes, unknown flags and too many
// tasks are corrupt entries.
func TestACorruptPackedRunIsAnError(t *testing.T) {
	good := func() *fsmpb.TasksEnded {
		return &fsmpb.TasksEnded{Executor: "e1", TaskDeltas: []int64{1, 1}, Partitions: []int32{0, 1}, ResultLens: []uint32{1, 2}, Results: []byte("abc")}
	}
	for name, mutate := range map[string]func(m *fsmpb.TasksEnded){
		"no tasks":           func(m *fsmpb.TasksEnded) { m.TaskDeltas, m.Partitions, m.ResultLens = nil, nil, nil },
		"partitions short":   func(m *fsmpb.TasksEnded) { m.Partitions = m.Partitions[:1] },
		"durations long":     func(m *fsmpb.TasksEnded) { m.DurationMs = []int64{1, 2, 3} },
		"lengths past bytes": func(m *fsmpb.TasksEnded) { m.ResultLens = []uint32{1, 1 << 31} },
		"bytes left over":    func(m *fsmpb.TasksEnded) { m.Results = []byte("abcd") },
		"unknown flag":       func(m *fsmpb.TasksEnded) { m.Flags = []uint32{0, 8} },
		"too many tasks": func(m *fsmpb.TasksEnded) {
			m.TaskDeltas, m.Partitions, m.ResultLens, m.Results = make([]int64, maxPackedRun+1), make([]int32, maxPackedRun+1), nil, nil
		},
	} {
		m := good()
		mutate(m)
		payload, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		entry, err := encodeEntry(1, []*fsmpb.Command{{Type: fsmpb.Type_TYPE_TASKS_ENDED, Payload: payload}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Decode(entry); err == nil || !strings.Contains(err.Error(), "corrupt") {
			t.Errorf("%s: Decode gave %v, want a corrupt entry", name, err)
		}
	}
	payload, _ := proto.Marshal(good())
	entry, _ := encodeEntry(1, []*fsmpb.Command{{Type: fsmpb.Type_TYPE_TASKS_ENDED, Payload: payload}})
	d, err := Decode(entry)
	if err != nil || len(d.Commands) != 2 || string(d.Commands[1].(*dag.TaskEnded).Result) != "bc" {
		t.Fatalf("the good run decoded as %v, %v", d, err)
	}
}
