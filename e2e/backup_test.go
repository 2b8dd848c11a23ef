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
)

// TestBackupAndRestore: a backup taken with batonctl restores into a
// fresh quorum (the jobs and their kept results are there, and it runs
// new jobs), and rolls a quorum back; a corrupt backup is refused and
// changes nothing.
func TestBackupAndRestore(t *testing.T) {
	a := jobCluster(t)
	cla := a.client()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, err := plan.Parse([]byte(`{"name": "kept", "datasets": {"r": {"op": "range", "n": 100, "partitions": 4},
		"k": {"op": "map", "input": "r", "fn": {"name": "mod", "args": {"n": 3}}}, "c": {"op": "reduceByKey", "input": "k", "fn": "count", "partitions": 2}},
		"action": {"op": "collect", "input": "c"}}`))
	if err != nil {
		t.Fatal(err)
	}
	id, err := cla.Submit(ctx, p, client.SubmitOptions{IdempotencyKey: "kept-job"})
	if err != nil {
		t.Fatal(err)
	}
	want, err := cla.Answer(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "baton.backup")
	out, errOut, code := batonctl(t, "-addr", a.nodes["b"].apiAddr, "operator", "snapshot", "save", file)
	if code != 0 || !strings.Contains(out, "written to") {
		t.Fatalf("snapshot save: exit %d: %s %s", code, out, errOut)
	}

	// Into a fresh quorum.
	b := newCluster(t, 3, "-executor-timeout", "2s", "-heartbeat-interval", "200ms")
	b.waitLeader("")
	clb := b.client()
	out, errOut, code = batonctl(t, "-addr", b.nodes["c"].apiAddr, "operator", "snapshot", "restore", file)
	if code != 0 {
		t.Fatalf("snapshot restore: exit %d: %s %s", code, out, errOut)
	}
	if b.secure {
		// A backup carries the ACL system it was taken with: the
		// restored quorum answers the old quorum's tokens.
		b.copts.Token, b.execToken = a.copts.Token, a.execToken
		clb = b.client()
	}
	waitFor(t, "the restored job on every member", func() bool {
		for _, n := range b.order {
			jobs, err := b.client(n).Jobs(ctx, false)
			if err != nil || len(jobs) != 1 || jobs[0].Name != "kept" {
				return false
			}
		}
		return true
	})
	got, err := clb.Answer(ctx, id)
	if err != nil || formatAll(got) != formatAll(want) {
		t.Fatalf("the restored job's answer: %q, want %q (%v)", formatAll(got), formatAll(want), err)
	}
	// The member table is this quorum's own, not the backup's.
	old := map[string]bool{}
	for _, n := range a.nodes {
		old[n.apiAddr] = true
	}
	waitFor(t, "every member's own address in the member table", func() bool {
		peers, err := clb.Peers(ctx)
		if err != nil {
			return false
		}
		for _, p := range peers {
			if old[p.ApiAddr] {
				t.Fatalf("after the restore, member %s is at %s: the old quorum's address", p.Id, p.ApiAddr)
			}
			if p.ApiAddr != b.nodes[p.Id].apiAddr {
				return false
			}
		}
		return true
	})
	// The backup's executors are not here: they are declared lost.
	waitFor(t, "the backup's executors declared lost", func() bool {
		ex, err := clb.Executors(ctx)
		if err != nil {
			return false
		}
		for _, e := range ex {
			if e.Alive {
				return false
			}
		}
		return len(ex) == 2
	})
	// Its idempotency key came along: resubmitting finds the job.
	if again, err := clb.Submit(ctx, p, client.SubmitOptions{IdempotencyKey: "kept-job"}); err != nil || again != id {
		t.Fatalf("resubmission after the restore: job %d, %v; want %d", again, err, id)
	}
	// The restored quorum runs jobs with its own executors.
	b.startExec("b1")
	t.Cleanup(b.stopExecs)
	if recs, err := clb.Run(ctx, testPlanCount(), client.SubmitOptions{}); err != nil || formatAll(recs) != "100" {
		t.Fatalf("a job on the restored quorum: %v %v", recs, err)
	}

	// A corrupt backup is refused; the state stays.
	bad := filepath.Join(t.TempDir(), "bad.backup")
	data, _ := os.ReadFile(file)
	data[len(data)/2] ^= 0xff
	os.WriteFile(bad, data, 0o644)
	_, errOut, code = batonctl(t, "-addr", b.nodes["a"].apiAddr, "operator", "snapshot", "restore", bad)
	if code == 0 || !strings.Contains(errOut, "not a backup") {
		t.Fatalf("a corrupt backup: exit %d: %s", code, errOut)
	}
	if jobs, err := clb.Jobs(ctx, true); err != nil || len(jobs) != 2 {
		t.Fatalf("after the refused restore: %d jobs, %v", len(jobs), err)
	}

	// Rolling back: restoring the old backup drops the later job.
	if _, _, code := batonctl(t, "-addr", b.nodes["a"].apiAddr, "operator", "snapshot", "restore", file); code != 0 {
		t.Fatal("restoring the backup again failed")
	}
	waitFor(t, "the roll-back", func() bool {
		jobs, err := clb.Jobs(ctx, true)
		return err == nil && len(jobs) == 1
	})
}
