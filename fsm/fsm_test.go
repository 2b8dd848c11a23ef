package fsm

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/baton-sched/baton/dag"
	"github.com/baton-sched/baton/fsm/fsmpb"
	"github.com/baton-sched/baton/internal/dagtest"
	"github.com/baton-sched/baton/plan"
	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"
)

func testGraph() *plan.Graph {
	return &plan.Graph{
		Name: "t",
		Nodes: []plan.Node{
			{Name: "a", Op: "range", Partitions: 2, Params: []byte(`{"n":10}`)},
			{Name: "b", Op: "reduceByKey", Fn: plan.Func{Name: "sum"}, Partitions: 2, Deps: []plan.Dep{{Kind: plan.Shuffle, Parent: 0,
				Shuffle: &plan.ShuffleDep{Key: "k", Partitioner: plan.Partitioner{Kind: "hash", Partitions: 2}, Combiner: plan.Func{Name: "sum"}}}}},
		},
		Output: 1,
		Action: plan.GraphAction{Op: "collect"},
	}
}

// every command type, with every field set.
func allCommands() []dag.Command {
	return []dag.Command{
		&dag.RegisterExecutor{ID: "e1", Addr: "127.0.0.1:1", Cores: 4, Funcs: []string{"sum", "words"}},
		&dag.RemoveExecutor{ID: "e1", Reason: "heartbeat timeout"},
		&dag.SubmitJob{Graph: testGraph(), Key: "idem", Pool: "etl", MaxTaskFailures: 2, MaxResultSize: 1 << 20, Group: "nightly"},
		&dag.SubmitJob{Graph: testGraph(), Partitions: []int{1}},
		&dag.SubmitJob{Graph: testGraph(), MapStage: true, AdaptiveTarget: 64 << 20},
		&dag.SubmitJob{Graph: testGraph(), Partitions: []int{}},
		&dag.TaskEnded{Task: 7, Stage: 1, StageAttempt: 2, Partition: 3, Attempt: 1, Executor: "e2", Epoch: 9,
			Reason: dag.FetchFailed, Message: "boom", MapBytes: 10, MapSizes: []byte{1, 2}, ResultSize: 5,
			Result: []byte("hello"), Indirect: true, FetchExecutor: "e3", FetchShuffle: 4, FetchMap: -1, FetchReduce: 3,
			DurationMs: 12, ExitCausedByApp: true, Speculative: true, SpilledBytes: 4096,
			Accumulators: []dag.Accumulator{{Name: "bad", Kind: dag.AccCount, Int: 3}, {Name: "low", Kind: dag.AccMin, Int: -9}, {Name: "x", Kind: dag.AccMaxFloat, Float: 2.5}},
			Cached:       []dag.CachedPartition{{Key: "c1", Partition: 3, Bytes: 99, Gen: 5}}},
		&dag.ResubmitFailedStages{},
		&dag.AuthorizeCommit{Stage: 1, StageAttempt: 0, Partition: 2, Task: 11, Executor: "e1"},
		&dag.CancelJob{Job: 3, Reason: "user"},
		&dag.ReleaseJob{Job: 3},
		&dag.CancelJobGroup{Group: "nightly", Reason: "user"},
		&dag.CancelStage{Stage: 4, Reason: "user"},
		&dag.Unpersist{Keys: []string{"c1", "c2"}},
		&dag.CancelAllJobs{Reason: "maintenance"},
	}
}

func TestCodecRoundTrip(t *testing.T) {
	const now = 1_700_000_000_000_000_000
	cmds := allCommands()
	data, err := Encode(now, cmds)
	if err != nil {
		t.Fatal(err)
	}
	d, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	if d.Time != now || len(d.Commands) != len(cmds) {
		t.Fatalf("decoded time %d, %d commands", d.Time, len(d.Commands))
	}
	for i, want := range cmds {
		stampTime(want, now)
		if !reflect.DeepEqual(d.Commands[i], want) {
			t.Errorf("command %d:\n got %#v\nwant %#v", i, d.Commands[i], want)
		}
	}
	// Deterministic: the same commands encode to the same bytes.
	again, _ := Encode(now, cmds)
	if !bytes.Equal(data, again) {
		t.Error("encoding is not deterministic")
	}
}

func stampTime(c dag.Command, t int64) {
	v := reflect.ValueOf(c).Elem().FieldByName("Time")
	v.SetInt(t)
}

func TestDecodeRejectsCorruptEntries(t *testing.T) {
	good, _ := Encode(1, allCommands())
	unknown := func(skip bool) []byte {
		e := &fsmpb.Entry{Time: 1, Commands: []*fsmpb.Command{
			{Type: fsmpb.Type_TYPE_RESUBMIT_FAILED_STAGES},
			{Type: fsmpb.Type(999), SkipIfUnknown: skip, Payload: []byte("future")},
		}}
		b, _ := proto.Marshal(e)
		return frame(b)
	}
	badPayload := func() []byte {
		e := &fsmpb.Entry{Commands: []*fsmpb.Command{{Type: fsmpb.Type_TYPE_TASK_ENDED, Payload: []byte{0xff, 0xff, 0xff}}}}
		b, _ := proto.Marshal(e)
		return frame(b)
	}
	for name, data := range map[string][]byte{
		"empty":               nil,
		"unknown format":      append([]byte{9}, good[1:]...),
		"one byte changed":    flip(good, len(good)-3),
		"checksum changed":    flip(good, 2),
		"format byte to v1":   append([]byte{entryFormatV1}, good[1:]...),
		"short checksum":      good[:3],
		"truncated":           good[:len(good)/2],
		"garbage":             frame([]byte{0xff, 0xff, 0xff, 0xff}),
		"unknown type":        unknown(false),
		"bad payload":         badPayload(),
		"bad graph in submit": mustEncodeSubmitWithGraph([]byte("{not json")),
	} {
		if _, err := Decode(data); !errors.Is(err, ErrCorruptEntry) {
			t.Errorf("%s: Decode = %v, want ErrCorruptEntry", name, err)
		}
	}
	d, err := Decode(unknown(true))
	if err != nil {
		t.Fatalf("skip-if-unknown: %v", err)
	}
	if len(d.Skipped) != 1 || d.Commands[0] == nil || d.Commands[1] != nil {
		t.Fatalf("skip-if-unknown: skipped %v, commands %v", d.Skipped, d.Commands)
	}
}

func flip(b []byte, i int) []byte {
	out := append([]byte(nil), b...)
	out[i] ^= 0x02
	return out
}

// TestDecodeReadsUncheckedEntries: entries an earlier build wrote (format
// 1, no checksum) are still read.
func TestDecodeReadsUncheckedEntries(t *testing.T) {
	good, _ := Encode(1, allCommands())
	d, err := Decode(append([]byte{entryFormatV1}, good[5:]...))
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Commands) != len(allCommands()) {
		t.Fatalf("%d commands", len(d.Commands))
	}
}

func mustEncodeSubmitWithGraph(g []byte) []byte {
	payload, _ := proto.Marshal(&fsmpb.SubmitJob{Graph: g, AllPartitions: true})
	b, _ := proto.Marshal(&fsmpb.Entry{Commands: []*fsmpb.Command{{Type: fsmpb.Type_TYPE_SUBMIT_JOB, Payload: payload}}})
	return frame(b)
}

func logEntry(t *testing.T, index uint64, cmds ...dag.Command) *raft.Log {
	t.Helper()
	data, err := Encode(int64(index)*1000, cmds)
	if err != nil {
		t.Fatal(err)
	}
	return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: data}
}

func TestApplyReturnsOneResultPerCommand(t *testing.T) {
	f := New(Options{})
	resp := f.Apply(logEntry(t, 1,
		&dag.RegisterExecutor{ID: "e1", Cores: 2},
		&dag.SubmitJob{Graph: testGraph()},
		&dag.CancelJob{Job: 42},
	)).(*Response)
	if resp.Index != 1 || len(resp.Results) != 3 {
		t.Fatalf("response %+v", resp)
	}
	if resp.Results[0].Err != nil || resp.Results[1].Err != nil || resp.Results[1].Job != 0 {
		t.Errorf("results %+v", resp.Results)
	}
	// A business failure is a result, not a panic.
	if !errors.Is(resp.Results[2].Err, dag.ErrUnknownJob) {
		t.Errorf("cancel of an unknown job: %v", resp.Results[2].Err)
	}
	if idx, term := f.Applied(); idx != 1 || term != 1 {
		t.Errorf("Applied() = %d, %d", idx, term)
	}
	// Configuration entries advance the index and yield no response.
	if r := f.Apply(&raft.Log{Index: 2, Type: raft.LogConfiguration}); r != nil {
		t.Errorf("configuration entry: %v", r)
	}
	if idx, _ := f.Applied(); idx != 2 {
		t.Errorf("Applied() = %d after a configuration entry", idx)
	}
}

func TestApplyPanicsOnCorruptEntry(t *testing.T) {
	f := New(Options{})
	defer func() {
		r := recover()
		if r == nil || !strings.Contains(r.(string), "corrupt log entry") {
			t.Fatalf("recovered %v, want a corrupt-entry panic", r)
		}
	}()
	f.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: frame([]byte{0xff})})
}

func TestChangedFiresOnApply(t *testing.T) {
	f := New(Options{})
	ch := f.Changed()
	select {
	case <-ch:
		t.Fatal("fired before any change")
	default:
	}
	f.ApplyBatch([]*raft.Log{logEntry(t, 1, &dag.RegisterExecutor{ID: "e1"}), logEntry(t, 2, &dag.ResubmitFailedStages{})})
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("Changed did not fire")
	}
}

type sink struct {
	bytes.Buffer
	cancelled bool
}

func (s *sink) ID() string    { return "test" }
func (s *sink) Cancel() error { s.cancelled = true; return nil }
func (s *sink) Close() error  { return nil }

func snapshotBytes(t *testing.T, f *FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var out sink
	if err := snap.Persist(&out); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	return out.Bytes()
}

// feed applies n commands of a simulation in batches of up to 16.
func feed(t *testing.T, f *FSM, sim *dagtest.Sim, index *uint64, n int) {
	t.Helper()
	for n > 0 {
		batch := min(n, 1+int(*index%16))
		cmds := make([]dag.Command, batch)
		for i := range cmds {
			cmds[i], _ = sim.Next()
		}
		*index++
		f.Apply(logEntry(t, *index, cmds...))
		n -= batch
	}
}

func TestSnapshotRestoreRoundTrip(t *testing.T) {
	sim := dagtest.New(dagtest.Options{Seed: 7, Faults: 1})
	f := New(Options{})
	var index uint64
	feed(t, f, sim, &index, 3000)
	snap1 := snapshotBytes(t, f)

	g := New(Options{})
	if err := g.Restore(io.NopCloser(bytes.NewReader(snap1))); err != nil {
		t.Fatal(err)
	}
	if snap2 := snapshotBytes(t, g); !bytes.Equal(snap1, snap2) {
		t.Fatal("snapshot -> restore -> snapshot differs")
	}
	if a, b := f.Applied(); true {
		if c, d := g.Applied(); a != c || b != d {
			t.Fatalf("restored applied index %d/%d, want %d/%d", c, d, a, b)
		}
	}
}

func TestRestoreRejectsCorruptSnapshotAndKeepsState(t *testing.T) {
	sim := dagtest.New(dagtest.Options{Seed: 8, Faults: 1})
	f := New(Options{})
	var index uint64
	feed(t, f, sim, &index, 500)
	good := snapshotBytes(t, f)

	g := New(Options{})
	feed(t, g, dagtest.New(dagtest.Options{Seed: 9}), new(uint64), 50)
	before := snapshotBytes(t, g)

	flipped := append([]byte(nil), good...)
	flipped[len(flipped)/2] ^= 0x40
	for name, data := range map[string][]byte{
		"flipped byte": flipped,
		"truncated":    good[:len(good)-10],
		"bad magic":    append([]byte("XXXXXXXX"), good[8:]...),
		"empty":        nil,
	} {
		err := g.Restore(io.NopCloser(bytes.NewReader(data)))
		if err == nil {
			t.Errorf("%s: restore succeeded", name)
		}
		if after := snapshotBytes(t, g); !bytes.Equal(before, after) {
			t.Errorf("%s: a failed restore changed the state", name)
		}
	}
}

func TestMemberTable(t *testing.T) {
	f := New(Options{})
	apply := func(index uint64, m Member) {
		data, err := EncodeMember(int64(index), m)
		if err != nil {
			t.Fatal(err)
		}
		f.Apply(&raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: data})
	}
	apply(1, Member{ID: "b", RaftAddr: "127.0.0.1:2", APIAddr: "127.0.0.1:3", HTTPAddr: "127.0.0.1:4"})
	apply(2, Member{ID: "a", RaftAddr: "127.0.0.1:5"})
	apply(3, Member{ID: "c", RaftAddr: "127.0.0.1:6"})
	apply(4, Member{ID: "c", Removed: true})
	want := []Member{{ID: "a", RaftAddr: "127.0.0.1:5"}, {ID: "b", RaftAddr: "127.0.0.1:2", APIAddr: "127.0.0.1:3", HTTPAddr: "127.0.0.1:4"}}
	if got := f.Members(); !reflect.DeepEqual(got, want) {
		t.Fatalf("members %+v, want %+v", got, want)
	}
	g := New(Options{})
	if err := g.Restore(io.NopCloser(bytes.NewReader(snapshotBytes(t, f)))); err != nil {
		t.Fatal(err)
	}
	if got := g.Members(); !reflect.DeepEqual(got, want) {
		t.Fatalf("restored members %+v, want %+v", got, want)
	}
	if m, ok := g.Member("b"); !ok || m.APIAddr != "127.0.0.1:3" {
		t.Fatalf("Member(b) = %+v, %t", m, ok)
	}
}

// TestLeaderHistory: takeovers are kept, the latest MaxLeaders of them,
// oldest first, and survive a snapshot.
func TestLeaderHistory(t *testing.T) {
	f := New(Options{})
	for i := uint64(1); i <= MaxLeaders+5; i++ {
		data, err := EncodeLeaderReady(int64(i), LeaderReady{ID: "n1", Term: i + 1, Won: int64(i) * 1e9, Ready: int64(i)*1e9 + 3e8, Executors: 2, ExecutorsBack: 2})
		if err != nil {
			t.Fatal(err)
		}
		f.Apply(&raft.Log{Index: i, Term: i + 1, Type: raft.LogCommand, Data: data})
	}
	got := f.Leaders()
	if len(got) != MaxLeaders || got[0].Term != 7 || got[len(got)-1].Term != MaxLeaders+6 {
		t.Fatalf("%d takeovers, terms %d..%d", len(got), got[0].Term, got[len(got)-1].Term)
	}
	g := New(Options{})
	if err := g.Restore(io.NopCloser(bytes.NewReader(snapshotBytes(t, f)))); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g.Leaders(), got) {
		t.Fatal("the takeovers did not survive a snapshot")
	}
}
