package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/client"
	"github.com/baton-sched/baton/plan"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

var secretRE = regexp.MustCompile(`Secret ID\s+=\s+(\S+)`)

// aclCluster starts a three-node quorum, bootstraps its ACLs with batonctl
// and returns the management token; the cluster's clients carry it.
func aclCluster(t *testing.T, flags ...string) (*cluster, string) {
	t.Helper()
	c := newClusterWith(t, 3, plainCluster, flags...)
	c.waitLeader("")
	out, errOut, code := batonctl(t, "-addr", c.nodes["a"].apiAddr, "acl", "bootstrap")
	if code != 0 {
		t.Fatalf("acl bootstrap: exit %d: %s", code, errOut)
	}
	m := secretRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("acl bootstrap printed no secret: %s", out)
	}
	c.copts.Token = m[1]
	return c, m[1]
}

// newToken makes a token of a policy with the management token.
func newToken(t *testing.T, c *cluster, policy string) string {
	t.Helper()
	tok, err := c.client().CreateToken(context.Background(), policy+"-holder", policy)
	if err != nil {
		t.Fatalf("create %s token: %v", policy, err)
	}
	return tok.Secret
}

func ctl(t *testing.T, c *cluster, token string, args ...string) (string, string, int) {
	t.Helper()
	var addrs []string
	for _, id := range c.order {
		addrs = append(addrs, c.nodes[id].apiAddr)
	}
	full := []string{"-addr", strings.Join(addrs, ",")}
	if token != "" {
		full = append(full, "-token", token)
	}
	return batonctl(t, append(full, args...)...)
}

func mustRefuse(t *testing.T, what string, stderr string, code int, want string) {
	t.Helper()
	if code == 0 {
		t.Fatalf("%s was allowed", what)
	}
	if !strings.Contains(stderr, want) {
		t.Fatalf("%s: refused without saying %q: %s", what, want, stderr)
	}
}

// TestACLsGuardEveryCall: once bootstrapped, a call without a token, with
// a bogus or deleted one, or with one whose policy does not allow it, is
// refused with a clear error and changes nothing: a read token cannot
// submit; a submit token cannot restore a snapshot, remove or add a peer,
// or save a backup; the HTTP API wants a token too.
func TestACLsGuardEveryCall(t *testing.T) {
	c, mgmt := aclCluster(t)
	_, errOut, code := ctl(t, c, "", "acl", "bootstrap")
	mustRefuse(t, "a second bootstrap", errOut, code, "already bootstrapped")
	_, errOut, code = ctl(t, c, "", "status")
	mustRefuse(t, "status without a token", errOut, code, "needs a token")
	_, errOut, code = ctl(t, c, "not-a-token", "status")
	mustRefuse(t, "status with a bogus token", errOut, code, "not valid")

	read, submit, operator := newToken(t, c, "read"), newToken(t, c, "submit"), newToken(t, c, "operator")
	if _, errOut, code := ctl(t, c, read, "jobs"); code != 0 {
		t.Fatalf("jobs with a read token: %s", errOut)
	}
	planFile := filepath.Join(t.TempDir(), "count.json")
	os.WriteFile(planFile, []byte(`{"name":"count","datasets":{"r":{"op":"range","n":100,"partitions":2}},"action":{"op":"count","input":"r"}}`), 0o644)
	_, errOut, code = ctl(t, c, read, "submit", "-f", planFile)
	mustRefuse(t, "submit with a read token", errOut, code, "may not call SubmitJob")
	jobs, err := c.client().Jobs(context.Background(), false)
	if err != nil || len(jobs) != 0 {
		t.Fatalf("a refused submit left jobs: %v %v", jobs, err)
	}

	backup := filepath.Join(t.TempDir(), "state.snap")
	_, errOut, code = ctl(t, c, submit, "operator", "snapshot", "save", backup)
	mustRefuse(t, "snapshot save with a submit token", errOut, code, "may not call SnapshotSave")
	// A backup holds the ACL system: management only.
	_, errOut, code = ctl(t, c, operator, "operator", "snapshot", "save", backup)
	mustRefuse(t, "snapshot save with an operator token", errOut, code, "needs management")
	if _, errOut, code := ctl(t, c, mgmt, "operator", "snapshot", "save", backup); code != 0 {
		t.Fatalf("snapshot save with the management token: %s", errOut)
	}
	_, errOut, code = ctl(t, c, operator, "operator", "snapshot", "restore", backup)
	mustRefuse(t, "snapshot restore with an operator token", errOut, code, "needs management")
	_, errOut, code = ctl(t, c, submit, "operator", "snapshot", "restore", backup)
	mustRefuse(t, "snapshot restore with a submit token", errOut, code, "may not call SnapshotRestore")
	_, errOut, code = ctl(t, c, submit, "operator", "raft", "remove-peer", "b")
	mustRefuse(t, "remove-peer with a submit token", errOut, code, "may not call RemovePeer")
	_, errOut, code = ctl(t, c, "", "operator", "raft", "add-peer", "-id", "x", "-raft-addr", "127.0.0.1:1")
	mustRefuse(t, "add-peer without a token", errOut, code, "needs a token")
	_, errOut, code = ctl(t, c, read, "acl", "token", "create", "-policy", "management")
	mustRefuse(t, "a read token making a management token", errOut, code, "may not call CreateToken")
	peers, err := c.client().Peers(context.Background())
	if err != nil || len(peers) != 3 {
		t.Fatalf("peers after refused changes: %d %v", len(peers), err)
	}

	// A follower forwards with the caller's token, never its own rights.
	lead, _ := c.waitLeader("")
	var follower string
	for _, id := range c.order {
		if id != lead {
			follower = id
			break
		}
	}
	_, errOut, code = batonctl(t, "-addr", c.nodes[follower].apiAddr, "-token", read, "submit", "-f", planFile)
	mustRefuse(t, "submit through a follower with a read token", errOut, code, "may not call SubmitJob")

	// HTTP: the API and metrics want a token; the UI's files do not.
	get := func(path, token string) int {
		req, _ := http.NewRequest("GET", "http://"+c.nodes[lead].httpA+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for path, want := range map[string]int{"/v1/jobs": 401, "/metrics": 401, "/ui/": 200} {
		if got := get(path, ""); got != want {
			t.Errorf("GET %s without a token: %d, want %d", path, got, want)
		}
	}
	if got := get("/v1/jobs", read); got != 200 {
		t.Errorf("GET /v1/jobs with a read token: %d", got)
	}

	// A deleted token stops working; the last management token stays.
	toks, err := c.client().Tokens(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var readAccessor, mgmtAccessor string
	for _, tk := range toks {
		switch tk.Policy {
		case "read":
			readAccessor = tk.Accessor
		case "management":
			mgmtAccessor = tk.Accessor
		}
		if tk.Secret != "" {
			t.Fatal("token list shows a secret")
		}
	}
	if _, errOut, code := ctl(t, c, mgmt, "acl", "token", "delete", readAccessor); code != 0 {
		t.Fatalf("token delete: %s", errOut)
	}
	_, errOut, code = ctl(t, c, read, "jobs")
	mustRefuse(t, "jobs with a deleted token", errOut, code, "not valid")
	_, errOut, code = ctl(t, c, mgmt, "acl", "token", "delete", mgmtAccessor)
	mustRefuse(t, "deleting the last management token", errOut, code, "last management token")
}

// TestACLsSurviveRestart: the ACL system is replicated state: a member
// restarted from its data directory enforces it at once.
func TestACLsSurviveRestart(t *testing.T) {
	c, _ := aclCluster(t)
	read := newToken(t, c, "read")
	c.kill("a")
	<-c.nodes["a"].done
	c.start("a")
	waitFor(t, "a back", func() bool { _, err := c.nodeStatus("a"); return err == nil })
	_, errOut, code := batonctl(t, "-addr", c.nodes["a"].apiAddr, "jobs")
	mustRefuse(t, "jobs without a token on a restarted member", errOut, code, "needs a token")
	if _, errOut, code := batonctl(t, "-addr", c.nodes["a"].apiAddr, "-token", read, "jobs"); code != 0 {
		t.Fatalf("jobs with a read token on a restarted member: %s", errOut)
	}
}

// TestExecutorsNeedATokenAndKeepTheirIdentity: an executor without an
// executor token is refused; one with a token runs jobs; a second
// executor with another token cannot take over the first one's id.
func TestExecutorsNeedATokenAndKeepTheirIdentity(t *testing.T) {
	c, _ := aclCluster(t)
	exe1, exe2 := newToken(t, c, "executor"), newToken(t, c, "executor")
	c.startExec("e0")
	c.startExec("e1", "-token", exe1)
	cl := c.client()
	waitFor(t, "e1 registered", func() bool { return liveExecutors(cl) == 1 })
	if data, _ := os.ReadFile(filepath.Join(c.root, "exec-e0.log")); !waitLog(t, filepath.Join(c.root, "exec-e0.log"), "needs a token") {
		t.Fatalf("e0 without a token did not say why it was refused: %s", data)
	}
	// The same id under another token is refused while e1 holds it.
	c.startExecBin("e1-rogue", "execd", "-id", "e1", "-token", exe2)
	if !waitLog(t, filepath.Join(c.root, "exec-e1-rogue.log"), "bound to another identity") {
		data, _ := os.ReadFile(filepath.Join(c.root, "exec-e1-rogue.log"))
		t.Fatalf("a second executor under e1's id was not refused: %s", data)
	}
	p := &plan.Plan{Name: "count", Datasets: map[string]*plan.Dataset{"r": {Op: "range", N: 1000, Partitions: 4}}, Action: plan.Action{Op: "count", Input: "r"}}
	job, err := cl.Submit(context.Background(), p, client.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	done, err := cl.Wait(context.Background(), job, nil)
	if err != nil || done.State != api.JobState_JOB_STATE_SUCCEEDED {
		t.Fatalf("job: %v %v", done, err)
	}
	ex, _ := cl.Executors(context.Background())
	for _, e := range ex {
		if e.Id == "e0" {
			t.Fatal("an executor without a token registered")
		}
	}
}

func liveExecutors(cl *client.Client) int {
	ex, err := cl.Executors(context.Background())
	if err != nil {
		return -1
	}
	n := 0
	for _, e := range ex {
		if e.Alive {
			n++
		}
	}
	return n
}

// waitLog waits up to 20s for a log file to contain s.
func waitLog(t *testing.T, path, s string) bool {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if data, _ := os.ReadFile(path); strings.Contains(string(data), s) {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return false
}

// TestUserCodeIsConfined: a pipe of a program no live executor allows is
// refused at submission and runs nothing; with an executor that allows it,
// its tasks run there and never on one that does not; textFile and
// saveAsTextFile outside the data roots, or escaping them with "..", are
// refused at submission.
func TestUserCodeIsConfined(t *testing.T) {
	c := newCluster(t, 3)
	c.startExec("e1", "-pipe-allow", "awk")
	cl := c.client()
	waitFor(t, "e1 registered", func() bool { return liveExecutors(cl) == 1 })
	marker := filepath.Join(t.TempDir(), "pwned")
	p := &plan.Plan{Name: "rce", Datasets: map[string]*plan.Dataset{
		"r": {Op: "range", N: 10, Partitions: 1},
		"p": {Op: "pipe", Input: "r", Command: "sh", Args: []string{"-c", "id; touch " + marker}},
	}, Action: plan.Action{Op: "collect", Input: "p"}}
	// Refused at submission: no live executor allows sh.
	if _, err := cl.Submit(context.Background(), p, client.SubmitOptions{}); status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "no live executor allows it") {
		t.Fatalf("a pipe of sh: %v", err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the program ran")
	}
	// With an executor that allows sh, the job runs there and only there.
	c.startExec("e2", "-pipe-allow", "sh")
	waitFor(t, "e2 registered", func() bool { return liveExecutors(cl) == 2 })
	p.Datasets["r"].Partitions = 4
	job, err := cl.Submit(context.Background(), p, client.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if done, err := cl.Wait(context.Background(), job, nil); err != nil || done.State != api.JobState_JOB_STATE_SUCCEEDED {
		t.Fatalf("the sh job with e2 allowing sh: %v %v", done, err)
	}
	if st := execStatsOf(t, c, "e1"); st[0].LaunchesByJob[job] != 0 {
		t.Fatalf("e1, which does not allow sh, was launched %d of its tasks", st[0].LaunchesByJob[job])
	}
	c.signalExec("e2", syscall.SIGKILL)
	waitFor(t, "e2 lost", func() bool { return liveExecutors(cl) == 1 })
	// awk is allowed.
	p.Datasets["p"] = &plan.Dataset{Op: "pipe", Input: "r", Command: "awk", Args: []string{"{print $1 * 2}"}}
	if recs := opAnswer(t, cl, p); len(recs) != 10 {
		t.Fatalf("awk: %d records", len(recs))
	}

	for name, pl := range map[string]*plan.Plan{
		"textFile /etc/passwd": {Name: "read", Datasets: map[string]*plan.Dataset{"f": {Op: "textFile", Path: "/etc/passwd"}}, Action: plan.Action{Op: "collect", Input: "f"}},
		"textFile via ..":      {Name: "read", Datasets: map[string]*plan.Dataset{"f": {Op: "textFile", Path: filepath.Join(os.TempDir(), "..", "etc", "passwd")}}, Action: plan.Action{Op: "collect", Input: "f"}},
		"saveAsTextFile /var/baton-out": {Name: "write", Datasets: map[string]*plan.Dataset{"r": {Op: "range", N: 3, Partitions: 1}},
			Action: plan.Action{Op: "saveAsTextFile", Input: "r", Path: "/var/baton-e2e-out"}},
	} {
		_, err := cl.Submit(context.Background(), pl, client.SubmitOptions{})
		if err == nil || !strings.Contains(err.Error(), "not allowed on this machine") {
			t.Errorf("%s: %v", name, err)
		}
		if c := status.Code(err); c != codes.InvalidArgument && c != codes.PermissionDenied {
			t.Errorf("%s: code %v", name, c)
		}
	}
	if _, err := os.Stat("/var/baton-e2e-out"); err == nil {
		t.Fatal("saveAsTextFile wrote outside the data roots")
	}
	jobs, _ := cl.Jobs(context.Background(), false)
	if len(jobs) != 2 {
		t.Fatalf("refused submissions left jobs: %d", len(jobs))
	}
}

// TestForgedStatusUpdatesAreIgnored: a session that reports FINISHED for
// attempts never launched to it (another partition, a made-up task id)
// commits nothing.
func TestForgedStatusUpdatesAreIgnored(t *testing.T) {
	c, _ := aclCluster(t)
	exe := newToken(t, c, "executor")
	lead, _ := c.waitLeader("")
	cl := c.client()
	p := &plan.Plan{Name: "victim", Datasets: map[string]*plan.Dataset{"r": {Op: "range", N: 100, Partitions: 4}}, Action: plan.Action{Op: "count", Input: "r"}}
	job, err := cl.Submit(context.Background(), p, client.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// A hand-made session: say hello, then report every partition done.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sess, err := openSession(ctx, c.nodes[lead].apiAddr, exe, &api.Hello{ExecutorId: "forger", Addr: "127.0.0.1:9", Cores: 1})
	if err != nil {
		t.Fatal(err)
	}
	// Wait for the launch of one task, then forge the others' ends.
	var launched *api.TaskID
	for launched == nil {
		m, err := sess.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if l := m.GetLaunch(); l != nil && len(l.Tasks) > 0 {
			launched = l.Tasks[0].Id
		}
	}
	var forged []*api.TaskStatus
	for part := int32(0); part < 4; part++ {
		if part == launched.Partition {
			continue
		}
		id := &api.TaskID{Task: launched.Task + 1000 + uint64(part), Job: launched.Job, Stage: launched.Stage, StageAttempt: launched.StageAttempt, Partition: part, Epoch: launched.Epoch}
		forged = append(forged, &api.TaskStatus{Id: id, State: api.TaskState_TASK_STATE_FINISHED, ResultSize: 2})
	}
	// The launched task's id with another partition is forged too.
	other := proto.Clone(launched).(*api.TaskID)
	other.Partition = (launched.Partition + 1) % 4
	forged = append(forged, &api.TaskStatus{Id: other, State: api.TaskState_TASK_STATE_FINISHED, ResultSize: 2})
	if err := sess.Send(&api.ExecutorMessage{Msg: &api.ExecutorMessage_Updates{Updates: &api.StatusUpdates{Updates: forged}}}); err != nil {
		t.Fatal(err)
	}
	if !waitLog(t, filepath.Join(c.root, lead+".log"), "ignored status updates for attempts not launched to this session") {
		t.Fatal("the leader did not say it ignored the forged updates")
	}
	j, err := cl.Job(context.Background(), job, false)
	if err != nil {
		t.Fatal(err)
	}
	if j.Finished > 0 || j.TaskSuccesses > 0 {
		t.Fatalf("forged ends were committed: %d partitions finished, %d successes", j.Finished, j.TaskSuccesses)
	}
	cancel()
	// A real executor finishes the job.
	c.startExec("e1", "-token", exe)
	done, err := cl.Wait(context.Background(), job, nil)
	if err != nil || done.State != api.JobState_JOB_STATE_SUCCEEDED {
		t.Fatalf("job: %v %v", done, err)
	}
	if n, err := cl.Count(context.Background(), job); err != nil || n != 100 {
		t.Fatalf("count: %d %v", n, err)
	}
}

// openSession opens an executor session by hand, as a rogue program
// holding an executor token would.
func openSession(ctx context.Context, addr, token string, hello *api.Hello) (grpc.BidiStreamingClient[api.ExecutorMessage, api.DriverMessage], error) {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	go func() { <-ctx.Done(); cc.Close() }()
	ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	st, err := api.NewExecutorsClient(cc).Connect(ctx)
	if err != nil {
		return nil, err
	}
	return st, st.Send(&api.ExecutorMessage{Msg: &api.ExecutorMessage_Hello{Hello: hello}})
}

// TestAMemberCutOffDuringTheBootstrapServesNoOne: a member that hears
// nothing from the leader while the ACLs are bootstrapped holds a replica
// without the bootstrap. With -acl it serves no one until it holds the
// bootstrap, then wants a token; without -acl it answers from its replica
// as if ACLs were off (as documented).
func TestAMemberCutOffDuringTheBootstrapServesNoOne(t *testing.T) {
	for _, acl := range []bool{true, false} {
		t.Run(fmt.Sprintf("acl=%v", acl), func(t *testing.T) { cutOffDuringTheBootstrap(t, acl) })
	}
}

func cutOffDuringTheBootstrap(t *testing.T, acl bool) {
	var flags []string
	if acl {
		flags = []string{"-acl"}
	}
	// Node c's Raft traffic comes in through a proxy the test can cut: a
	// partition of what reaches c (what c sends still goes out).
	var px *cutProxy
	c := newClusterWith(t, 3, func(c *cluster) {
		plainCluster(c)
		px = newCutProxy(t, c.nodes["c"].raft)
		for i, f := range c.flags {
			if f == "-bootstrap" {
				c.flags[i+1] = strings.Replace(c.flags[i+1], "c="+c.nodes["c"].raft, "c="+px.addr, 1)
			}
		}
		if c.nodeFlags == nil {
			c.nodeFlags = map[string][]string{}
		}
		c.nodeFlags["c"] = []string{"-raft-advertise", px.addr}
	}, flags...)
	ops := map[string]api.OperatorClient{}
	for _, id := range c.order {
		cc, err := grpc.NewClient(c.nodes[id].apiAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		ops[id] = api.NewOperatorClient(cc)
	}
	// Open to anyone, with -acl too: a node's own Raft status.
	nodeStatus := func(id string) *api.NodeStatus {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		st, _ := ops[id].GetNodeStatus(ctx, &api.NodeStatusRequest{})
		return st
	}
	// replayingC reports whether c says it is replaying the log it had
	// when it started (and so answers no call that needs a token check).
	replayingC := func() bool {
		probe, err := client.Dial([]string{c.nodes["c"].apiAddr}, client.Options{RetryFor: time.Millisecond, CallTimeout: 5 * time.Second})
		if err != nil {
			return true
		}
		defer probe.Close()
		_, err = probe.Jobs(context.Background(), false)
		return err != nil && strings.Contains(err.Error(), "is replaying its log")
	}
	waitFor(t, "a leader other than c, and c following it", func() bool {
		for _, id := range []string{"a", "b", "c"} {
			st := nodeStatus(id)
			if st == nil || st.State != "Leader" {
				continue
			}
			if id == "c" {
				// With -acl nobody may transfer leadership before the
				// bootstrap: restart c, and a or b takes over.
				c.kill("c")
				<-c.nodes["c"].done
				c.start("c")
				return false
			}
			// c follows it and has applied what the leader has: a c
			// restarted above may still be replaying entries it cannot
			// know are committed until the leader tells it, and cut off
			// then it could never tell whether ACLs are on (that case is
			// not the one tested here).
			f := nodeStatus("c")
			if f == nil || f.State != "Follower" || f.LeaderId != id || f.StateIndex < st.StateIndex {
				return false
			}
			// Caught up, and still replaying the log it started with: that
			// log ended in entries c appended as leader that were never
			// committed, which the new leader's entries replace but may not
			// outgrow. Started again now, c starts from the leader's log.
			if replayingC() {
				c.kill("c")
				<-c.nodes["c"].done
				c.start("c")
				return false
			}
			return true
		}
		return false
	})
	px.cut(true)
	boot, err := c.client("a", "b").ACLBootstrap(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// c's own view (not linearizable: served from its replica), over
	// gRPC and HTTP.
	anon, err := client.Dial([]string{c.nodes["c"].apiAddr}, client.Options{RetryFor: time.Millisecond, CallTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	httpJobs := func() int {
		resp, err := http.Get("http://" + c.nodes["c"].httpA + "/v1/jobs")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	_, err = anon.Jobs(context.Background(), false)
	if !acl {
		if err != nil || httpJobs() != http.StatusOK {
			t.Fatalf("without -acl, a member cut off during the bootstrap answers from its replica: %v", err)
		}
	} else {
		if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "cannot check tokens") {
			t.Fatalf("jobs without a token on a member cut off during the bootstrap: %v", err)
		}
		if code := httpJobs(); code != http.StatusServiceUnavailable {
			t.Fatalf("GET /v1/jobs without a token on a member cut off during the bootstrap: %d", code)
		}
	}

	px.cut(false)
	waitFor(t, "c to want a token", func() bool {
		_, err := anon.Jobs(context.Background(), false)
		return status.Code(err) == codes.Unauthenticated && httpJobs() == http.StatusUnauthorized
	})
	if _, errOut, code := batonctl(t, "-addr", c.nodes["c"].apiAddr, "-token", boot.Secret, "jobs"); code != 0 {
		t.Fatalf("jobs with the management token on c: %s", errOut)
	}
}

// cutProxy forwards TCP connections to a target until cut: then it drops
// the connections it carries and every new one.
type cutProxy struct {
	addr   string
	target string
	mu     sync.Mutex
	down   bool
	conns  []net.Conn
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{addr: ln.Addr().String(), target: target}
	t.Cleanup(func() { ln.Close(); p.cut(true) })
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			down := p.down
			p.mu.Unlock()
			if down {
				in.Close()
				continue
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, in, out)
			p.mu.Unlock()
			go func() { io.Copy(out, in); out.Close() }()
			go func() { io.Copy(in, out); in.Close() }()
		}
	}()
	return p
}

func (p *cutProxy) cut(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
	}
}

// TestACLChangesEndOpenStreams: a stream is checked when it opens, and
// again whenever the ACL system changes. An executor that joined before
// the bootstrap, or with a token since deleted, loses its session and is
// refused when it comes back (it kept receiving tasks); a job watch under
// a deleted token ends.
func TestACLChangesEndOpenStreams(t *testing.T) {
	c := newClusterWith(t, 3, plainCluster)
	c.waitLeader("")
	c.startExec("e0")
	cl := c.client()
	waitFor(t, "e0 registered", func() bool { return liveExecutors(cl) == 1 })

	out, errOut, code := batonctl(t, "-addr", c.nodes["a"].apiAddr, "acl", "bootstrap")
	if code != 0 {
		t.Fatalf("acl bootstrap: exit %d: %s", code, errOut)
	}
	m := secretRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("acl bootstrap printed no secret: %s", out)
	}
	c.copts.Token = m[1]
	e0log := filepath.Join(c.root, "exec-e0.log")
	if !waitLog(t, e0log, "ACLs were bootstrapped and this stream carries no token") || !waitLog(t, e0log, "needs a token") {
		data, _ := os.ReadFile(e0log)
		t.Fatalf("e0, joined before the bootstrap, kept its session: %s", data)
	}

	exe := newToken(t, c, "executor")
	c.startExec("e1", "-token", exe)
	cl = c.client()
	waitFor(t, "e1 registered", func() bool {
		ex, _ := cl.Executors(context.Background())
		for _, e := range ex {
			if e.Id == "e1" && e.Alive {
				return true
			}
		}
		return false
	})
	read := newToken(t, c, "read")
	// A job nothing can finish once e1 is gone: its watch stays open.
	job, err := cl.Submit(context.Background(), sleepJob(t, "slow", 4, 600000, ""), client.SubmitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient(c.nodes["b"].apiAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	wctx, wcancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+read), 2*time.Minute)
	defer wcancel()
	watch, err := api.NewSchedulerClient(cc).WatchJob(wctx, &api.WatchJobRequest{JobId: job})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := watch.Recv(); err != nil {
		t.Fatalf("the watch with a read token: %v", err)
	}

	toks, err := cl.Tokens(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range toks {
		if tk.Policy == "executor" || tk.Policy == "read" {
			if err := cl.DeleteToken(context.Background(), tk.Accessor); err != nil {
				t.Fatal(err)
			}
		}
	}
	e1log := filepath.Join(c.root, "exec-e1.log")
	if !waitLog(t, e1log, "the token of this stream was deleted") || !waitLog(t, e1log, "not valid") {
		data, _ := os.ReadFile(e1log)
		t.Fatalf("e1 kept its session after its token was deleted: %s", data)
	}
	for {
		_, err := watch.Recv()
		if err == nil {
			continue
		}
		if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), "deleted") {
			t.Fatalf("the watch under a deleted token ended with %v", err)
		}
		break
	}
	waitFor(t, "e1 no longer serving", func() bool { return liveExecutors(cl) == 0 })
	cl.Cancel(context.Background(), job, "test over")
}

// TestExecutorIdsStayBoundAcrossLeaders: an executor id is bound, in the
// replicated state, to the token that registered it: after the executor
// and the leader are gone, a holder of another executor token cannot take
// the id under the new leader (the binding lived in the old leader's
// memory). Deleting the token releases the id.
func TestExecutorIdsStayBoundAcrossLeaders(t *testing.T) {
	c, _ := aclCluster(t)
	cl := c.client()
	exe1, err := cl.CreateToken(context.Background(), "fleet-1", "executor")
	if err != nil {
		t.Fatal(err)
	}
	exe2 := newToken(t, c, "executor")
	c.startExec("e1", "-token", exe1.Secret)
	waitFor(t, "e1 registered", func() bool { return liveExecutors(cl) == 1 })
	c.signalExec("e1", syscall.SIGKILL)
	lead, _ := c.waitLeader("")
	c.kill(lead)
	<-c.nodes[lead].done
	c.waitLeader(lead)

	c.startExecBin("e1-rogue", "execd", "-id", "e1", "-token", exe2)
	rogueLog := filepath.Join(c.root, "exec-e1-rogue.log")
	if !waitLog(t, rogueLog, "bound to another identity") {
		data, _ := os.ReadFile(rogueLog)
		t.Fatalf("under a new leader, another token took e1's id: %s", data)
	}
	// Released with its token: the other token's executor gets the id.
	if err := cl.DeleteToken(context.Background(), exe1.Accessor); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "e1's id released with its token, and taken by the other", func() bool { return liveExecutors(cl) == 1 })
}
