package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/baton-sched/baton/tlsconf"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/blockstore"
	"github.com/baton-sched/baton/client"
	"github.com/baton-sched/baton/ops"
	"github.com/baton-sched/baton/plan"
)

// execNode is one execd process.
type execNode struct {
	name, dir, addr string
	cmd             *exec.Cmd
	done            chan struct{}
}

// startExec starts (or restarts) an executor attached to every node.
func (c *cluster) startExec(name string, extra ...string) *execNode {
	c.t.Helper()
	return c.startExecBin(name, "execd", extra...)
}

// execSecurity are an executor's certificate and token flags in a secure
// cluster: the certificate is named after its id (-id in extra, else
// name).
func (c *cluster) execSecurity(name string, extra []string) []string {
	if !c.secure {
		return nil
	}
	id := name
	for i, a := range extra {
		if a == "-id" && i+1 < len(extra) {
			id = extra[i+1]
		}
	}
	return append(certFlags(c.t, tlsconf.RoleExecutor, id), "-token", c.execToken)
}

// startExecBin starts an executor from another binary built with
// executor.Main (a user's execd).
func (c *cluster) startExecBin(name, bin string, extra ...string) *execNode {
	c.t.Helper()
	if c.execs == nil {
		c.execs = map[string]*execNode{}
		// Every executor goes with its test: one left running dials its
		// cluster's ports, which a later test's cluster may be given.
		c.t.Cleanup(c.stopExecs)
	}
	e := c.execs[name]
	if e == nil {
		e = &execNode{name: name, dir: filepath.Join(c.root, "exec-"+name), addr: freePort(c.t)}
		c.execs[name] = e
	}
	var scheds []string
	for _, id := range c.order {
		scheds = append(scheds, c.nodes[id].apiAddr)
	}
	logf, err := os.OpenFile(filepath.Join(c.root, "exec-"+name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	args := append(append([]string{"-id", name, "-data-dir", e.dir, "-schedulers", strings.Join(scheds, ","), "-addr", e.addr, "-cores", "4"}, execConfine...), c.execSecurity(name, extra)...)
	args = append(args, extra...)
	e.cmd = exec.Command(filepath.Join(binDir, bin), args...)
	e.cmd.Stdout, e.cmd.Stderr = logf, logf
	if err := e.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	e.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		cmd.Wait()
		logf.Close()
		close(done)
	}(e.cmd, e.done)
	return e
}

func (c *cluster) signalExec(name string, sig syscall.Signal) {
	c.t.Helper()
	e := c.execs[name]
	if e == nil || e.cmd == nil {
		return
	}
	e.cmd.Process.Signal(sig)
	select {
	case <-e.done:
	case <-time.After(20 * time.Second):
		c.t.Fatalf("executor %s did not exit after %s", name, sig)
	}
	e.cmd = nil
}

func (c *cluster) stopExecs() {
	for _, e := range c.execs {
		if e.cmd != nil {
			e.cmd.Process.Kill()
			<-e.done
			e.cmd = nil
		}
	}
}

// jobCluster is three schedd and two execd, with a short executor timeout
// so that losses are noticed quickly.
func jobCluster(t *testing.T, flags ...string) *cluster {
	t.Helper()
	return jobClusterWith(t, nil, flags...)
}

// jobClusterWith is jobCluster with a setup step (plainCluster).
func jobClusterWith(t *testing.T, setup func(*cluster), flags ...string) *cluster {
	t.Helper()
	c := newClusterWith(t, 3, setup, append([]string{"-executor-timeout", "2s", "-heartbeat-interval", "200ms"}, flags...)...)
	t.Cleanup(c.stopExecs)
	c.waitLeader("")
	c.startExec("e1")
	c.startExec("e2")
	cl := c.client()
	waitFor(t, "two executors", func() bool {
		ex, err := cl.Executors(context.Background())
		alive := 0
		for _, e := range ex {
			if e.Alive {
				alive++
			}
		}
		return err == nil && alive == 2
	})
	return c
}

// genText writes files of random words and returns the reference count.
func genText(t *testing.T, dir string, files, lines int, seed uint64) map[string]int {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	vocab := make([]string, 500)
	for i := range vocab {
		vocab[i] = fmt.Sprintf("w%03d", i)
	}
	want := map[string]int{}
	for f := 0; f < files; f++ {
		var b strings.Builder
		for l := 0; l < lines; l++ {
			n := rng.IntN(12)
			for w := 0; w < n; w++ {
				word := vocab[int(rng.ExpFloat64()*60)%len(vocab)]
				if rng.IntN(10) == 0 {
					word = strings.ToUpper(word)
				}
				want[strings.ToLower(word)]++
				if w > 0 {
					b.WriteByte(' ')
				}
				b.WriteString(word)
			}
			b.WriteByte('\n')
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("part-%02d.txt", f)), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return want
}

func wordCountPlan(glob string, extra string) *plan.Plan {
	src := fmt.Sprintf(`{"name": "wordcount", "datasets": {
		"lines":  {"op": "textFile", "path": %q, "partitions": 8},
		"words":  {"op": "flatMap", "input": "lines", "fn": "words"},
		"lower":  {"op": "map", "input": "words", "fn": "lower"},
		"pairs":  {"op": "map", "input": "lower", "fn": "pairWithOne"},
		"counts": {"op": "reduceByKey", "input": "pairs", "fn": "sum", "partitions": 4}%s},
		"action": {"op": "collect", "input": "%s"}}`, glob, extra, map[bool]string{true: "out", false: "counts"}[extra != ""])
	p, err := plan.Parse([]byte(src))
	if err != nil {
		panic(err)
	}
	return p
}

// runJob submits a plan, waits for its end and returns its records.
func runJob(t *testing.T, cl *client.Client, p *plan.Plan, opts client.SubmitOptions) (*api.Job, []ops.Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	id, err := cl.Submit(ctx, p, opts)
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	j, err := cl.Wait(ctx, id, nil)
	if err != nil {
		t.Fatalf("wait: %v", err)
	}
	if j.State != api.JobState_JOB_STATE_SUCCEEDED {
		return j, nil
	}
	recs, err := cl.Collect(ctx, id)
	if err != nil {
		t.Fatalf("collect: %v", err)
	}
	return j, recs
}

func counts(t *testing.T, recs []ops.Record) map[string]int {
	t.Helper()
	got := map[string]int{}
	for _, r := range recs {
		n, err := strconv.Atoi(string(r.Value))
		if err != nil {
			t.Fatalf("record %q: %v", r.Value, err)
		}
		if _, dup := got[string(r.Key)]; dup {
			t.Fatalf("key %q twice", r.Key)
		}
		got[string(r.Key)] = n
	}
	return got
}

func sameCounts(t *testing.T, got, want map[string]int) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d words, want %d", len(got), len(want))
	}
	for w, n := range want {
		if got[w] != n {
			t.Fatalf("count of %q = %d, want %d", w, got[w], n)
		}
	}
}

func TestWordCountAndTwoShuffles(t *testing.T) {
	c := jobCluster(t)
	dir := t.TempDir()
	want := genText(t, dir, 6, 3000, 1)
	cl := c.client()
	j, recs := runJob(t, cl, wordCountPlan(filepath.Join(dir, "*.txt"), ""), client.SubmitOptions{})
	if j.State != api.JobState_JOB_STATE_SUCCEEDED {
		t.Fatalf("word count %s: %s", j.State, j.Message)
	}
	sameCounts(t, counts(t, recs), want)

	// Two shuffles: count words, then count how many words have each
	// count (a histogram), checked against the reference.
	hist := map[string]int{}
	for _, n := range want {
		hist[strconv.Itoa(n)]++
	}
	p, err := plan.Parse([]byte(fmt.Sprintf(`{"name": "histogram", "datasets": {
		"lines":  {"op": "textFile", "path": %q, "partitions": 5},
		"words":  {"op": "flatMap", "input": "lines", "fn": "words"},
		"lower":  {"op": "map", "input": "words", "fn": "lower"},
		"pairs":  {"op": "map", "input": "lower", "fn": "pairWithOne"},
		"counts": {"op": "reduceByKey", "input": "pairs", "fn": "sum", "partitions": 3},
		"n":      {"op": "map", "input": "counts", "fn": {"name": "field", "args": {"i": 0}}},
		"byN":    {"op": "map", "input": "n", "fn": "pairWithOne"},
		"hist":   {"op": "reduceByKey", "input": "byN", "fn": "count", "partitions": 2}},
		"action": {"op": "collect", "input": "hist"}}`, filepath.Join(dir, "*.txt"))))
	if err != nil {
		t.Fatal(err)
	}
	j, recs = runJob(t, cl, p, client.SubmitOptions{})
	if j.State != api.JobState_JOB_STATE_SUCCEEDED {
		t.Fatalf("histogram %s: %s", j.State, j.Message)
	}
	if len(j.Stages) != 3 {
		t.Errorf("histogram ran %d stages, want 3", len(j.Stages))
	}
	sameCounts(t, counts(t, recs), hist)

	// batonctl submit -wait -o json prints the id, state and results.
	planFile := filepath.Join(dir, "plan.json")
	b, _ := json.Marshal(wordCountPlan(filepath.Join(dir, "*.txt"), ""))
	os.WriteFile(planFile, b, 0o644)
	out, errOut, code := batonctl(t, "-addr", c.nodes["a"].apiAddr, "submit", "-f", planFile, "-wait", "-o", "json")
	if code != 0 {
		t.Fatalf("batonctl submit -wait: %d %s", code, errOut)
	}
	var res struct {
		ID      uint64       `json:"id"`
		State   string       `json:"state"`
		Results [][2]*string `json:"results"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.State != "succeeded" {
		t.Fatalf("submit -o json: %v\n%s", err, out)
	}
	fromCLI := map[string]int{}
	for _, kv := range res.Results {
		n, _ := strconv.Atoi(*kv[1])
		fromCLI[*kv[0]] = n
	}
	sameCounts(t, fromCLI, want)
	// The text output of job results is key<TAB>value.
	id, _ := cl.Submit(context.Background(), wordCountPlan(filepath.Join(dir, "*.txt"), ""), client.SubmitOptions{})
	out, _, code = batonctl(t, "-addr", c.nodes["b"].apiAddr, "job", "results", strconv.FormatUint(id, 10))
	if code != 0 || !strings.Contains(out, "w000\t"+strconv.Itoa(want["w000"])+"\n") {
		t.Fatalf("job results: exit %d\n%.300s", code, out)
	}
}

func TestIndirectResultsAndMaxResultSize(t *testing.T) {
	// Plain: the test reads a result from an executor's block service
	// itself, which a secure cluster grants members only.
	c := jobClusterWith(t, plainCluster)
	cl := c.client()
	blob := func(size int) *plan.Plan {
		p, err := plan.Parse([]byte(fmt.Sprintf(`{"name": "blob", "datasets": {
			"r": {"op": "range", "n": 4, "partitions": 2},
			"b": {"op": "mapPartitions", "input": "r", "fn": {"name": "chaos.blob", "args": {"bytes": %d}}}},
			"action": {"op": "collect", "input": "b"}}`, size)))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	// 200 KB results: above maxDirectResultSize (64 KiB), so they stay on
	// the executors and travel by reference.
	j, recs := runJob(t, cl, blob(200_000), client.SubmitOptions{})
	if j.State != api.JobState_JOB_STATE_SUCCEEDED || len(recs) != 2 || len(recs[0].Value) != 200_000 {
		t.Fatalf("blob job: %s %q, %d records", j.State, j.Message, len(recs))
	}
	results, err := cl.JobResults(context.Background(), j.Id, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	conns := &blockstore.Conns{}
	defer conns.Close()
	addrs := map[string]string{}
	execs, _ := cl.Executors(context.Background())
	for _, e := range execs {
		addrs[e.Id] = e.Addr
	}
	for _, r := range results {
		if !r.Indirect {
			t.Fatalf("partition %d's %d-byte result is direct", r.Partition, r.Size)
		}
		if _, err := conns.FetchResult(context.Background(), addrs[r.Executor], j.Id, r.Task); err != nil {
			t.Fatalf("the indirect result of partition %d is not on %s: %v", r.Partition, r.Executor, err)
		}
	}
	// Released: the blocks are deleted.
	if err := cl.Release(context.Background(), j.Id); err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		waitFor(t, "the result block to be deleted", func() bool {
			_, err := conns.FetchResult(context.Background(), addrs[r.Executor], j.Id, r.Task)
			return err != nil
		})
	}

	// Over the job's maxResultSize: the job fails with Spark's message.
	j, _ = runJob(t, cl, blob(5000), client.SubmitOptions{MaxResultSize: 8000})
	if j.State != api.JobState_JOB_STATE_FAILED || !strings.Contains(j.Message, "Total size of serialized results of 2 tasks") || !strings.Contains(j.Message, "bigger than maxResultSize") {
		t.Fatalf("max result size: %s: %q", j.State, j.Message)
	}
}

// lossPlan is a word count whose reducers sleep before fetching, so a
// test can act between the map and reduce stages.
func lossPlan(glob string) *plan.Plan {
	return wordCountPlan(glob, `,
		"out": {"op": "mapPartitions", "input": "counts", "fn": {"name": "chaos.sleep", "args": {"ms": 1500}}}`)
}

// waitMapStage waits until a job's first map stage has all its outputs.
func waitMapStage(t *testing.T, cl *client.Client, id uint64) {
	t.Helper()
	waitFor(t, "the map stage to finish", func() bool {
		j, err := cl.Job(context.Background(), id, false)
		return err == nil && len(j.Stages) > 0 && j.Stages[0].Map && j.Stages[0].Available == j.Stages[0].Tasks
	})
}

func TestExecutorKilledBetweenStages(t *testing.T) {
	c := jobCluster(t)
	dir := t.TempDir()
	want := genText(t, dir, 6, 2000, 2)
	cl := c.client()
	id, err := cl.Submit(context.Background(), lossPlan(filepath.Join(dir, "*.txt")), client.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitMapStage(t, cl, id)
	c.signalExec("e2", syscall.SIGKILL)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	j, err := cl.Wait(ctx, id, nil)
	if err != nil || j.State != api.JobState_JOB_STATE_SUCCEEDED {
		t.Fatalf("after the executor kill: %v %s %q", err, j.GetState(), j.GetMessage())
	}
	recs, err := cl.Collect(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	sameCounts(t, counts(t, recs), want)
	if j.Stages[0].Attempt == 0 && j.Stages[1].Attempt == 0 {
		t.Errorf("no stage was retried after losing an executor's outputs: %+v", j.Stages)
	}
	execs, _ := cl.Executors(context.Background())
	for _, e := range execs {
		if e.Id == "e2" && e.Alive {
			t.Errorf("the killed executor is still alive in the state")
		}
	}
}

func TestCorruptBlockIsRecomputed(t *testing.T) {
	c := newCluster(t, 3, "-executor-timeout", "5s", "-heartbeat-interval", "200ms")
	t.Cleanup(c.stopExecs)
	c.waitLeader("")
	c.startExec("e1")
	cl := c.client()
	dir := t.TempDir()
	want := genText(t, dir, 4, 2000, 3)
	id, err := cl.Submit(context.Background(), lossPlan(filepath.Join(dir, "*.txt")), client.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitMapStage(t, cl, id)
	// Stop the executor cleanly (its blocks are flushed to sstables),
	// flip bytes in them, and start it again.
	c.signalExec("e1", syscall.SIGTERM)
	ssts, _ := filepath.Glob(filepath.Join(c.execs["e1"].dir, "blocks", "*.sst"))
	if len(ssts) == 0 {
		t.Fatal("no sstables to corrupt")
	}
	for _, f := range ssts {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i := len(b) / 8; i < len(b)/2; i += 512 {
			b[i] ^= 0x5a
		}
		os.WriteFile(f, b, 0o644)
	}
	c.startExec("e1")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	j, err := cl.Wait(ctx, id, nil)
	if err != nil || j.State != api.JobState_JOB_STATE_SUCCEEDED {
		t.Fatalf("after corrupting blocks: %v %s %q", err, j.GetState(), j.GetMessage())
	}
	recs, err := cl.Collect(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	sameCounts(t, counts(t, recs), want)
	if j.Stages[0].Attempt == 0 {
		t.Errorf("the map stage was not recomputed: %+v", j.Stages[0])
	}
	log, _ := os.ReadFile(filepath.Join(c.root, "exec-e1.log"))
	if !bytes.Contains(log, []byte("corrupt block store file")) {
		t.Errorf("the executor did not report the corruption; its log:\n%s", log)
	}
}

// TestBadPlansAreRejectedAndNeverLogged: a plan naming an unknown
// function, dataset or input is refused at submission with a clear error,
// and nothing reaches the log.
func TestBadPlansAreRejectedAndNeverLogged(t *testing.T) {
	c := newCluster(t, 3)
	leader, _ := c.waitLeader("")
	cl := c.client()
	// The new leader's driver logs a barrier when it starts, and each
	// member logs its addresses once: wait for both.
	waitFor(t, "every member registered", func() bool {
		peers, err := cl.Peers(context.Background())
		n := 0
		for _, p := range peers {
			if p.ApiAddr != "" {
				n++
			}
		}
		return err == nil && n == 3
	})
	var before *api.NodeStatus
	waitFor(t, "the leader's driver and its takeover record", func() bool {
		st, err := c.nodeStatus(leader)
		if err != nil || !st.Driving {
			return false
		}
		hist, err := cl.LeaderHistory(context.Background())
		if err != nil || len(hist) == 0 || hist[len(hist)-1].Term != st.Term {
			return false
		}
		// Read the index once the record is applied here.
		st, err = c.nodeStatus(leader)
		before = st
		return err == nil
	})
	missing := filepath.Join(t.TempDir(), "nonexistent", "*.txt") // under the data roots
	for _, tc := range []struct{ plan, want string }{
		{`{"datasets": {"r": {"op": "range", "n": 5, "partitions": 1}, "w": {"op": "flatMap", "input": "r", "fn": "wrods"}}, "action": {"op": "collect", "input": "w"}}`, `unknown function "wrods" (did you mean words`},
		{`{"datasets": {"r": {"op": "parallelize", "records": [["a", "1"]], "partitions": 1}, "w": {"op": "reduceByKey", "input": "r", "fn": "words"}}, "action": {"op": "collect", "input": "w"}}`, "needs an aggregator function"},
		{`{"datasets": {"r": {"op": "range", "n": 5, "partitions": 1}, "w": {"op": "reduceByKey", "input": "r", "fn": "sum"}}, "action": {"op": "collect", "input": "w"}}`, "holds values without keys"},
		{`{"datasets": {"w": {"op": "map", "input": "nope", "fn": "lower"}}, "action": {"op": "collect", "input": "w"}}`, `unknown dataset reference "nope"`},
		{`{"datasets": {"t": {"op": "textFile", "path": "/nonexistent/*.txt"}}, "action": {"op": "count", "input": "t"}}`, "no input files match"},
		// A failed input followed by more datasets, and a sort: neither a
		// crash nor a sampling job.
		{`{"datasets": {"t": {"op": "textFile", "path": "/nonexistent/*.txt"}, "k": {"op": "map", "input": "t", "fn": "pairWithOne"},
			"s": {"op": "sortByKey", "input": "k", "partitions": 3}}, "action": {"op": "collect", "input": "s"}}`, "no input files match"},
		{`{"datasets": {"r": {"op": "range", "n": 9, "partitions": 3}, "k": {"op": "map", "input": "r", "fn": "pairWithOne"},
			"s": {"op": "sortByKey", "input": "k", "partitions": 3}}, "action": {"op": "reduce", "input": "s", "fn": "words"}}`, "needs an aggregator function"},
	} {
		p, err := plan.Parse([]byte(strings.ReplaceAll(tc.plan, "/nonexistent/*.txt", missing)))
		if err == nil {
			_, err = cl.Submit(context.Background(), p, client.SubmitOptions{})
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("plan %s: error %v, want %q", tc.plan, err, tc.want)
		}
	}
	after, err := c.nodeStatus(leader)
	if err != nil {
		t.Fatal(err)
	}
	if after.LastIndex != before.LastIndex {
		t.Fatalf("rejected plans reached the log: last index %d -> %d", before.LastIndex, after.LastIndex)
	}
}

// TestDevMode: one schedd -dev process runs a word count by itself.
func TestDevMode(t *testing.T) {
	ports := freePorts(t, 3)
	cmd := exec.Command(filepath.Join(binDir, "schedd"), "-dev", "-raft-addr", ports[0], "-api-addr", ports[1], "-http-addr", ports[2])
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			t.Logf("schedd -dev output:\n%s", out.String())
		}
	}()
	dir := t.TempDir()
	want := genText(t, dir, 2, 500, 9)
	cl, err := client.Dial([]string{ports[1]}, client.Options{RetryFor: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	j, recs := runJob(t, cl, wordCountPlan(filepath.Join(dir, "*.txt"), ""), client.SubmitOptions{})
	if j.State != api.JobState_JOB_STATE_SUCCEEDED {
		t.Fatalf("dev word count: %s %q", j.State, j.Message)
	}
	sameCounts(t, counts(t, recs), want)
}

// TestExecutorFindsTheLeaderThroughAFollower: an executor given only a
// follower's address is pointed to the leader and registers.
func TestExecutorFindsTheLeaderThroughAFollower(t *testing.T) {
	c := newCluster(t, 3)
	t.Cleanup(c.stopExecs)
	leader, _ := c.waitLeader("")
	var follower string
	for _, id := range c.order {
		if id != leader {
			follower = id
			break
		}
	}
	c.execs = map[string]*execNode{}
	e := &execNode{name: "ef", dir: filepath.Join(c.root, "exec-ef"), addr: freePort(t)}
	c.execs["ef"] = e
	e.cmd = exec.Command(filepath.Join(binDir, "execd"), append(append([]string{"-id", "ef", "-data-dir", e.dir, "-schedulers", c.nodes[follower].apiAddr, "-addr", e.addr, "-cores", "2"}, execConfine...), c.execSecurity("ef", nil)...)...)
	e.done = make(chan struct{})
	if err := e.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { e.cmd.Wait(); close(e.done) }()
	cl := c.client()
	waitFor(t, "the executor to register", func() bool {
		ex, err := cl.Executors(context.Background())
		return err == nil && len(ex) == 1 && ex[0].Alive
	})
	j, recs := runJob(t, cl, testPlanCount(), client.SubmitOptions{})
	if j.State != api.JobState_JOB_STATE_SUCCEEDED || len(recs) == 0 {
		t.Fatalf("job on the executor: %s %q", j.State, j.Message)
	}
}

func testPlanCount() *plan.Plan {
	p, err := plan.Parse([]byte(`{"datasets": {"r": {"op": "range", "n": 100, "partitions": 4}}, "action": {"op": "count", "input": "r"}}`))
	if err != nil {
		panic(err)
	}
	return p
}

// TestActionsMergeAcrossPartitions: the client merges the partitions'
// results as each action says.
func TestActionsMergeAcrossPartitions(t *testing.T) {
	c := jobCluster(t)
	cl := c.client()
	answer := func(action string) []string {
		t.Helper()
		p, err := plan.Parse([]byte(fmt.Sprintf(`{"datasets": {
			"r": {"op": "range", "n": 10, "partitions": 3},
			"kv": {"op": "parallelize", "records": [["a", "1"], ["b", "1"], ["a", "1"], ["c", "1"], ["a", "1"]], "partitions": 3}},
			"action": %s}`, action)))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		id, err := cl.Submit(ctx, p, client.SubmitOptions{})
		if err != nil {
			t.Fatal(err)
		}
		recs, err := cl.Answer(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range recs {
			out = append(out, ops.FormatRecord(r))
		}
		return out
	}
	for _, tc := range []struct{ action, want string }{
		{`{"op": "collect", "input": "r"}`, "0 1 2 3 4 5 6 7 8 9"},
		{`{"op": "count", "input": "r"}`, "10"},
		{`{"op": "take", "input": "r", "n": 2}`, "0 1"},
		{`{"op": "first", "input": "r"}`, "0"},
		{`{"op": "reduce", "input": "r", "fn": "sum"}`, "45"},
		{`{"op": "reduce", "input": "r", "fn": "max"}`, "9"},
		{`{"op": "countByKey", "input": "kv"}`, "a\t3 b\t1 c\t1"},
	} {
		if got := strings.Join(answer(tc.action), " "); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.action, got, tc.want)
		}
	}
}
