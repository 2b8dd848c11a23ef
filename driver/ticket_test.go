package driver

import (
	"testing"

	"github.com/baton-sched/baton/api"
	"google.golang.org/protobuf/proto"
)

// TestTicketsNameTheAttemptAndItsExecutor: a launch ticket is valid only
// for the attempt and the executor it was issued for; without a key there
// are no tickets and every report is taken at its word (ACLs off).
func TestTicketsNameTheAttemptAndItsExecutor(t *testing.T) {
	key := []byte("members' shared secret, 32 bytes")
	id := &api.TaskID{Task: 7, Job: 1, Stage: 2, StageAttempt: 0, Partition: 3, Attempt: 1, Epoch: 4}
	id.Ticket = ticket(key, id, "e1")
	if !validTicket(key, id, "e1") {
		t.Fatal("a ticket is not valid for its own attempt")
	}
	if validTicket(key, id, "e2") {
		t.Fatal("a ticket is valid for another executor")
	}
	for _, change := range []func(*api.TaskID){
		func(x *api.TaskID) { x.Partition = 4 }, func(x *api.TaskID) { x.Task = 8 }, func(x *api.TaskID) { x.Job = 2 },
		func(x *api.TaskID) { x.StageAttempt = 1 }, func(x *api.TaskID) { x.Ticket = nil },
	} {
		x := proto.Clone(id).(*api.TaskID)
		change(x)
		if validTicket(key, x, "e1") {
			t.Fatalf("a ticket is valid for a changed attempt %v", x)
		}
	}
	if validTicket([]byte("another cluster's secret........"), id, "e1") {
		t.Fatal("a ticket is valid under another key")
	}
	if ticket(nil, id, "e1") != nil || !validTicket(nil, &api.TaskID{Task: 1}, "e9") {
		t.Fatal("without a key there are no tickets and every report is taken")
	}
}
