package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/client"
)

// TestJobGroupsAndStageCancel: batonctl job cancel -group cancels the
// group's running jobs and no other (Spark's cancelJobGroup); stage cancel
// cancels the jobs that need a stage (cancelStage), each job saying why;
// a later job of the cancelled group runs to its end.
func TestJobGroupsAndStageCancel(t *testing.T) {
	c, cl := slowCluster(t)
	addr := strings.Join(c.APIAddrs(), ",")
	dir := t.TempDir()
	genText(t, dir, 4, 400, 17)
	glob := filepath.Join(dir, "*.txt")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	batonctl := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(filepath.Join(binDir, "batonctl"), append([]string{"-addr", addr}, args...)...)
		cmd.Env = append(os.Environ(), secureEnv(t)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("batonctl %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	submit := func(group string) uint64 {
		t.Helper()
		id, err := cl.Submit(ctx, slowWordCount(glob, 20000), client.SubmitOptions{Group: group})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	planFile := filepath.Join(dir, "plan.json")
	b, err := json.Marshal(slowWordCount(glob, 20000))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(planFile, b, 0o644); err != nil {
		t.Fatal(err)
	}
	var sub struct {
		Job uint64 `json:"id"`
	}
	if err := json.Unmarshal([]byte(batonctl("-o", "json", "submit", "-f", planFile, "-group", "etl")), &sub); err != nil {
		t.Fatal(err)
	}
	etl1, etl2, other := sub.Job, submit("etl"), submit("adhoc")

	out := batonctl("job", "cancel", "-group", "etl")
	if !strings.Contains(out, fmt.Sprintf("cancelled 2 jobs in group \"etl\": %d, %d", etl1, etl2)) {
		t.Fatalf("job cancel -group: %s", out)
	}
	for _, id := range []uint64{etl1, etl2} {
		j, err := cl.Job(ctx, id, true)
		if err != nil {
			t.Fatal(err)
		}
		if j.State != api.JobState_JOB_STATE_CANCELLED || j.Group != "etl" || !strings.Contains(j.Message, "part of cancelled job group etl") {
			t.Errorf("job %d: %s %q in group %q", id, j.State, j.Message, j.Group)
		}
	}
	if out := batonctl("job", "cancel", "-group", "etl"); !strings.Contains(out, "no running job in group") {
		t.Errorf("a group with no running job: %s", out)
	}

	j, err := cl.Job(ctx, other, true)
	if err != nil || j.State != api.JobState_JOB_STATE_RUNNING || len(j.Stages) == 0 {
		t.Fatalf("job %d of another group: %v %v", other, j, err)
	}
	stage := j.Stages[0].Id
	if out := batonctl("stage", "cancel", fmt.Sprint(stage)); !strings.Contains(out, fmt.Sprintf("cancelled 1 jobs needed stage %d: %d", stage, other)) {
		t.Fatalf("stage cancel: %s", out)
	}
	j, err = cl.Job(ctx, other, true)
	if err != nil || j.State != api.JobState_JOB_STATE_CANCELLED || !strings.Contains(j.Message, fmt.Sprintf("because Stage %d was cancelled", stage)) {
		t.Fatalf("job %d after its stage's cancel: %v %v", other, j, err)
	}

	// The group was cancelled, not closed.
	later, err := cl.Submit(ctx, slowWordCount(glob, 10), client.SubmitOptions{Group: "etl"})
	if err != nil {
		t.Fatal(err)
	}
	if j, err := cl.Wait(ctx, later, nil); err != nil || j.State != api.JobState_JOB_STATE_SUCCEEDED {
		t.Fatalf("a later job of the group: %v %v", j, err)
	}

	// job cancel -all cancels every running job, whatever its group
	// (Spark's cancelAllJobs), and then finds none.
	all1, all2 := submit("etl"), submit("")
	if out := batonctl("job", "cancel", "-all"); !strings.Contains(out, fmt.Sprintf("cancelled 2 jobs: %d, %d", all1, all2)) {
		t.Fatalf("job cancel -all: %s", out)
	}
	for _, id := range []uint64{all1, all2} {
		j, err := cl.Job(ctx, id, true)
		if err != nil || j.State != api.JobState_JOB_STATE_CANCELLED || !strings.Contains(j.Message, "as part of cancellation of all jobs") {
			t.Errorf("job %d after cancel -all: %v %v", id, j, err)
		}
	}
	if out := batonctl("job", "cancel", "-all"); !strings.Contains(out, "no running job") {
		t.Errorf("cancel -all with nothing running: %s", out)
	}
}
