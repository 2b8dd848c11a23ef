package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/baton-sched/baton/client"
	"github.com/baton-sched/baton/plan"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestUserFunctions: an executor built with user functions
// (examples/userfuncs) reports them; plans naming them are accepted and
// their tasks run only there, beside a plain execd; a name nobody holds
// is refused at submission with the names it could have meant.
func TestUserFunctions(t *testing.T) {
	c := jobCluster(t) // e1 and e2: plain execd
	c.startExecBin("u1", "userfuncs")
	cl := c.client()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	waitFor(t, "the user executor", func() bool {
		ex, _ := cl.Executors(ctx)
		for _, e := range ex {
			if e.Id == "u1" && e.Alive {
				return strings.Contains(strings.Join(e.Funcs, " "), "example.rot13")
			}
		}
		return false
	})
	parse := func(src string) *plan.Plan {
		t.Helper()
		p, err := plan.Parse([]byte(src))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	// Many partitions, so that plain executors would get tasks if they
	// could run them.
	p := parse(`{"datasets": {
		"words": {"op": "parallelize", "records": ["level", "hello", "noon", "Baton", "racecar", "go"], "partitions": 12},
		"pal":   {"op": "filter", "input": "words", "fn": "example.palindrome"},
		"rot":   {"op": "map", "input": "pal", "fn": "example.rot13"},
		"rep":   {"op": "map", "input": "rot", "fn": {"name": "example.repeat", "args": {"n": 2}}}},
		"action": {"op": "collect", "input": "rep"}}`)
	recs, err := cl.Run(ctx, p, client.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := formatAll(recs); got != "yriryyriry abbaabba enprpneenprpne" {
		t.Errorf("user functions: %q", got)
	}
	// A built-in-only job may run anywhere; a user-function job only on u1.
	for _, e := range execStatsOf(t, c, "e1", "e2") {
		for job := range e.LaunchesByJob {
			t.Errorf("executor %s ran tasks of the user-function job %d", e.ExecutorId, job)
		}
	}
	// A typo: refused with the names it could have meant.
	p.Datasets["rot"].Fn.Name = "example.rot31"
	_, err = cl.Submit(ctx, p, client.SubmitOptions{})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), `did you mean example.rot13`) {
		t.Errorf("a function nobody holds: %v", err)
	}
	// A bad argument to a user function fails the tasks with the reason.
	p.Datasets["rot"].Fn.Name = "example.rot13"
	p.Datasets["rep"].Fn.Args = []byte(`{"n": -1}`)
	j, _ := runJob(t, cl, p, client.SubmitOptions{MaxTaskFailures: 1})
	if !strings.Contains(j.Message, `needs {"n": k} with k >= 0`) {
		t.Errorf("bad arguments to a user function: job %s: %s", j.State, j.Message)
	}
	// A reduce with a user aggregator: the client cannot merge the
	// partitions' values without the function, so batonctl shows them
	// and says so, and still releases the job.
	planFile := filepath.Join(t.TempDir(), "longest.json")
	os.WriteFile(planFile, []byte(`{"datasets": {"r": {"op": "range", "n": 100, "partitions": 4}},
		"action": {"op": "reduce", "input": "r", "fn": "example.longest"}}`), 0o644)
	out, errOut, code := batonctl(t, "-addr", c.nodes["a"].apiAddr, "submit", "-f", planFile, "-wait")
	if code != 0 || !strings.Contains(errOut, "unmerged") || strings.Join(strings.Fields(out), " ") != "24 49 74 99" {
		t.Errorf("batonctl submit -wait of a user reduce: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	jobs, err := cl.Jobs(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	if last := jobs[len(jobs)-1]; !last.Released {
		t.Errorf("the user-reduce job %d was not released", last.Id)
	}
}
