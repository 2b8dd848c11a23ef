// Package uitest drives the web UI in headless Chromium against a real
// local cluster (3 schedd, 2 execd): it runs jobs, opens the Jobs, Job
// (with its stage DAG), Stage, Executors, Quorum and Leaders pages, checks
// what they show, and saves a screenshot of each. `make test-ui` installs
// Debian's chromium and runs it with BATON_UI_TEST=1; without that
// variable (plain `go test ./...`) it is skipped.
package uitest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/client"
	"github.com/baton-sched/baton/internal/localcluster"
	"github.com/baton-sched/baton/plan"
	"github.com/chromedp/chromedp"
)

// browser starts headless Chromium and returns a tab.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := os.Getenv("BATON_CHROMIUM")
	if path == "" {
		var err error
		if path, err = exec.LookPath("chromium"); err != nil {
			t.Fatalf("no chromium: %v (make test-ui installs Debian's chromium)", err)
		}
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.WindowSize(1280, 860), chromedp.Flag("disable-gpu", true),
		// The secure cluster's CA is the test's own (loopback only).
		chromedp.Flag("ignore-certificate-errors", true))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// shots is where screenshots go.
func shots(t *testing.T) string {
	dir := os.Getenv("BATON_UI_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// run runs browser actions with a deadline.
func run(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Run(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func screenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	var png []byte
	run(t, ctx, "screenshot "+name, chromedp.FullScreenshot(&png, 100)) // quality 100: PNG
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s", path)
}

func twoStageJob(t *testing.T, name string, sleepMS int) *plan.Plan {
	t.Helper()
	p, err := plan.Parse([]byte(fmt.Sprintf(`{"name": %q, "datasets": {
		"nums":   {"op": "range", "n": 4000, "partitions": 8},
		"counted": {"op": "filter", "input": "nums", "fn": {"name": "acc.count", "args": {"acc": "numbers"}}},
		"slow":   {"op": "mapPartitions", "input": "counted", "fn": {"name": "chaos.sleep", "args": {"ms": %d}}},
		"keyed":  {"op": "map", "input": "slow", "fn": {"name": "mod", "args": {"n": 10}}},
		"counts": {"op": "reduceByKey", "input": "keyed", "fn": "count", "partitions": 4}},
		"action": {"op": "collect", "input": "counts"}}`, name, sleepMS)))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestUI(t *testing.T) {
	if os.Getenv("BATON_UI_TEST") == "" {
		t.Skip("the browser test runs with make test-ui (BATON_UI_TEST=1)")
	}
	out := shots(t)
	cctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := localcluster.Start(cctx, localcluster.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cl, err := c.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	leader, _, err := c.Leader(cctx)
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + leader.HTTPAddr + "/ui/"

	// A finished two-stage job.
	if _, err := cl.Run(cctx, twoStageJob(t, "counts by digit", 0), client.SubmitOptions{}); err != nil {
		t.Fatal(err)
	}
	ctx := browser(t)

	// Jobs: the job, succeeded, with its progress bar full.
	var jobsText string
	run(t, ctx, "jobs page",
		chromedp.Navigate(base+"#/jobs"),
		chromedp.WaitVisible(`#jobs tbody tr[data-job]`),
		chromedp.Text(`#jobs`, &jobsText))
	for _, want := range []string{"counts by digit", "succeeded", "4/4"} {
		if !strings.Contains(jobsText, want) {
			t.Errorf("jobs page lacks %q:\n%s", want, jobsText)
		}
	}
	screenshot(t, ctx, out, "jobs")

	// A running job, watched live: its page updates without a reload
	// until it succeeds, and its DAG shows two stages and a shuffle.
	id, err := cl.Submit(cctx, twoStageJob(t, "slow counts", 600), client.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	jobURL := fmt.Sprintf("%s#/job/%d", base, id)
	var stages, edges int
	run(t, ctx, "job page while running",
		chromedp.Navigate(jobURL),
		chromedp.WaitVisible(`#dag g.stage`),
		chromedp.WaitVisible(`h1 .badge.running`),
		chromedp.Evaluate(`document.querySelectorAll("#dag g.stage").length`, &stages),
		chromedp.Evaluate(`document.querySelectorAll("#dag path.edge").length`, &edges))
	if stages != 2 || edges != 1 {
		t.Errorf("the DAG shows %d stages and %d edges, want 2 and 1", stages, edges)
	}
	screenshot(t, ctx, out, "job-running")
	var jobText, mapBox string
	run(t, ctx, "job page, live to the end",
		chromedp.WaitVisible(`h1 .badge.succeeded`), // no reload: the page refreshes itself
		chromedp.Text(`#stages`, &jobText),
		chromedp.TextContent(`#dag g.stage[data-stage]`, &mapBox))
	for _, want := range []string{"map", "result", "8/8", "4/4", "complete"} {
		if !strings.Contains(jobText, want) {
			t.Errorf("job page lacks %q:\n%s", want, jobText)
		}
	}
	if !strings.Contains(mapBox, "Stage") || !strings.Contains(mapBox, "map") {
		t.Errorf("the DAG's first box: %q", mapBox)
	}
	// What its tasks counted: each of the 4,000 numbers once, from the 8
	// map partitions.
	var accText string
	run(t, ctx, "job page accumulators", chromedp.Text(`#accumulators`, &accText))
	for _, want := range []string{"numbers", "count", "4000", "8 partitions"} {
		if !strings.Contains(accText, want) {
			t.Errorf("job page's accumulators lack %q:\n%s", want, accText)
		}
	}
	screenshot(t, ctx, out, "job")

	// The map stage: its 8 task attempts, all successes, on the executors.
	j, err := cl.Job(cctx, id, true)
	if err != nil || len(j.Stages) != 2 {
		t.Fatalf("job %d: %v %v", id, j, err)
	}
	var rows int
	var stageText string
	run(t, ctx, "stage page",
		chromedp.Navigate(fmt.Sprintf("%s#/stage/%d", base, j.Stages[0].Id)),
		chromedp.WaitVisible(`#tasks tbody tr`),
		chromedp.Evaluate(`document.querySelectorAll("#tasks tbody tr").length`, &rows),
		chromedp.Text(`#tasks`, &stageText))
	if rows != 8 || strings.Count(stageText, "success") != 8 || !strings.Contains(stageText, "shuffle") {
		t.Errorf("stage page: %d rows:\n%s", rows, stageText)
	}
	// What its shuffle holds for the 4 reducers, from the 8 outputs.
	var reducers string
	run(t, ctx, "stage page reducers", chromedp.Text(`#reducers`, &reducers))
	if !strings.Contains(reducers, "for 4 reducers from 8 map outputs") || !strings.Contains(reducers, "the largest, reducer") {
		t.Errorf("stage page's shuffle output: %q", reducers)
	}
	screenshot(t, ctx, out, "stage")

	// Executors: both alive with their 4 slots and the blocks they hold.
	var execText string
	run(t, ctx, "executors page",
		chromedp.Navigate(base+"#/executors"),
		chromedp.WaitVisible(`#executors tr[data-executor="e2"]`),
		chromedp.Text(`#executors`, &execText))
	for _, want := range []string{"e1", "e2", "alive", "KiB"} {
		if !strings.Contains(execText, want) {
			t.Errorf("executors page lacks %q:\n%s", want, execText)
		}
	}
	screenshot(t, ctx, out, "executors")

	// Quorum and leader history.
	var quorumText, leadersText string
	run(t, ctx, "quorum page",
		chromedp.Navigate(base+"#/quorum"),
		chromedp.WaitVisible(`#peers tr[data-peer="s3"]`),
		chromedp.Text(`#peers`, &quorumText))
	if strings.Count(quorumText, "follower") != 2 || strings.Count(quorumText, "leader") != 1 {
		t.Errorf("quorum page:\n%s", quorumText)
	}
	screenshot(t, ctx, out, "quorum")
	run(t, ctx, "leaders page",
		chromedp.Navigate(base+"#/leaders"),
		chromedp.WaitVisible(`#leaders tbody tr`),
		chromedp.Text(`#leaders`, &leadersText))
	if !strings.Contains(leadersText, leader.Name) {
		t.Errorf("leaders page lacks the leader %s:\n%s", leader.Name, leadersText)
	}
	screenshot(t, ctx, out, "leaders")

	// A follower serves its replica and links to the leader.
	var follower *localcluster.Proc
	for _, p := range c.Scheds {
		if p != leader {
			follower = p
			break
		}
	}
	var banner, followerJobs string
	run(t, ctx, "a follower's UI",
		chromedp.Navigate("http://"+follower.HTTPAddr+"/ui/#/jobs"),
		chromedp.WaitVisible(`#banner a`),
		chromedp.WaitVisible(`#jobs tbody tr[data-job]`),
		chromedp.Text(`#banner`, &banner),
		chromedp.Text(`#jobs`, &followerJobs))
	if !strings.Contains(banner, leader.Name) || !strings.Contains(followerJobs, "slow counts") {
		t.Errorf("follower UI: banner %q, jobs:\n%s", banner, followerJobs)
	}
	screenshot(t, ctx, out, "follower")
	if j.State != api.JobState_JOB_STATE_SUCCEEDED {
		t.Errorf("job %d: %s", id, j.State)
	}
}

// TestUIAsksForAToken: against a cluster with TLS and ACLs on (as make
// demo runs it), the UI shows the token form instead of data, and once
// given a read token it shows the jobs.
func TestUIAsksForAToken(t *testing.T) {
	if os.Getenv("BATON_UI_TEST") == "" {
		t.Skip("the browser test runs with make test-ui (BATON_UI_TEST=1)")
	}
	out := shots(t)
	cctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := localcluster.Start(cctx, localcluster.Options{Dir: t.TempDir(), Executors: 1, Secure: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cl, err := c.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := cl.Run(cctx, twoStageJob(t, "behind a token", 0), client.SubmitOptions{}); err != nil {
		t.Fatal(err)
	}
	read, err := cl.CreateToken(cctx, "dashboard", "read")
	if err != nil {
		t.Fatal(err)
	}
	leader, _, err := c.Leader(cctx)
	if err != nil {
		t.Fatal(err)
	}
	ctx := browser(t)
	var jobsText string
	run(t, ctx, "the token form",
		chromedp.Navigate("https://"+leader.HTTPAddr+"/ui/#/jobs"),
		chromedp.WaitVisible(`#login-token`),
		chromedp.Evaluate(`document.querySelectorAll("#jobs tbody tr[data-job]").length`, new(int)))
	screenshot(t, ctx, out, "token-form")
	run(t, ctx, "the jobs once the token is given",
		chromedp.SendKeys(`#login-token`, read.Secret),
		chromedp.Click(`#login button`),
		chromedp.WaitVisible(`#jobs tbody tr[data-job]`),
		chromedp.Text(`#jobs`, &jobsText))
	if !strings.Contains(jobsText, "behind a token") {
		t.Fatalf("jobs page after the token:\n%s", jobsText)
	}
	var login int
	run(t, ctx, "no form left", chromedp.Evaluate(`document.querySelectorAll("#login").length`, &login))
	if login != 0 {
		t.Fatal("the token form stayed")
	}
}
