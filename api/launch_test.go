package api

import (
	"testing"

	"google.golang.org/protobuf/proto"
)

// TestPackedLaunchesExpandAsTheyWere: launches packed in task sets expand
// to launches equal to the originals, in order; a set is one stage
// attempt's launches sharing their inputs, and what differs starts a new
// set.
func TestPackedLaunchesExpandAsTheyWere(t *testing.T) {
	inputs := []*ShuffleInput{{Shuffle: 3, Key: "k", Maps: 2, Locations: []*MapLocation{{Map: 0, Executor: "e1", Addr: "a"}, {Map: 1, Executor: "e2", Addr: "b"}}}}
	mk := func(task uint64, stage uint64, part int32) *TaskLaunch {
		return &TaskLaunch{Id: &TaskID{Task: task, Job: 1, Stage: stage, StageAttempt: 1, Partition: part, Attempt: part % 2, Epoch: 4, Ticket: []byte{byte(task), 9}},
			Term: 7, GraphKey: "g", Node: 2, Inputs: inputs, InputGrants: [][]byte{[]byte("grant")}, MaxDirectResultSize: 64, MaxResultSize: 1 << 20,
			ReduceStart: part, ReduceEnd: part + 2, CacheGenerations: map[string]uint64{"c": 1}}
	}
	var tasks []*TaskLaunch
	for i := range 5 {
		tasks = append(tasks, mk(uint64(10+i), 5, int32(i)))
	}
	tasks[0].Graph = []byte(`{"graph":1}`)
	tasks[3].Id.Speculative = true
	tasks = append(tasks, mk(20, 6, 0), mk(21, 6, 1)) // another stage
	other := mk(22, 6, 2)
	other.Inputs = nil // differs: a set of its own
	tasks = append(tasks, other, mk(23, 6, 3))
	l := PackLaunch(tasks)
	if len(l.Tasks) != 0 || len(l.Sets) != 4 {
		t.Fatalf("packed into %d tasks and %d sets, want 0 and 4", len(l.Tasks), len(l.Sets))
	}
	if size, plain := proto.Size(l), proto.Size(&Launch{Tasks: tasks}); size >= plain {
		t.Fatalf("packed launch is %d bytes, one per task %d", size, plain)
	}
	b, err := proto.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	var got Launch
	if err := proto.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	out, err := ExpandLaunch(&got)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(tasks) {
		t.Fatalf("expanded %d launches of %d", len(out), len(tasks))
	}
	for i := range tasks {
		if !proto.Equal(out[i], tasks[i]) {
			t.Fatalf("launch %d expands as\n%v\nwant\n%v", i, out[i], tasks[i])
		}
	}
	if _, err := ExpandLaunch(&Launch{Sets: []*TaskSetLaunch{{Tasks: []*SetTask{{Task: 1}}}}}); err == nil {
		t.Fatal("a set without a template expanded")
	}
}
