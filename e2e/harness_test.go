// Package e2e runs Baton's real binaries as separate processes on loopback
// and checks what a user would: a quorum that elects a leader, survives
// kills, restarts from its data directories, forwards writes, changes
// membership, and a CLI that reports it.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/client"
	"github.com/baton-sched/baton/internal/localcluster"
)

var binDir string

// execConfine are the confinement flags every test executor runs with:
// the programs the pipe tests use, and files under the temporary
// directory (where tests keep their inputs and outputs).
var execConfine = []string{"-pipe-allow", "awk,python3,tr,sh,head,/nonexistent/baton-no-such-program", "-data-root", os.TempDir()}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "baton-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	build := exec.Command("go", "build", "-o", dir+"/", "github.com/baton-sched/baton/cmd/...", "github.com/baton-sched/baton/examples/...")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// node is one schedd process.
type node struct {
	id                   string
	dir                  string
	raft, apiAddr, httpA string
	cmd                  *exec.Cmd
	log                  *os.File
	done                 chan struct{}
	exit                 error
	stopping             bool // we signalled it
}

// cluster is a set of schedd processes on loopback.
type cluster struct {
	t     *testing.T
	root  string
	nodes map[string]*node
	order []string
	flags []string // extra flags for every node
	execs map[string]*execNode
	// nodeFlags are extra flags of one node (its certificate).
	nodeFlags map[string][]string
	// copts are the options of the test's clients (TLS, a token).
	copts client.Options
}

func freePort(t *testing.T) string {
	t.Helper()
	return freePorts(t, 1)[0]
}

// freePorts returns n distinct free loopback addresses, below the
// ephemeral port range, so a node that is down does not lose its ports to
// other processes' outgoing connections (see localcluster.FreePorts).
func freePorts(t *testing.T, n int) []string {
	t.Helper()
	addrs, err := localcluster.FreePorts(n)
	if err != nil {
		t.Fatal(err)
	}
	return addrs
}

// newCluster starts n nodes bootstrapped together.
func newCluster(t *testing.T, n int, flags ...string) *cluster {
	t.Helper()
	return newClusterWith(t, n, nil, flags...)
}

// newClusterWith is newCluster with a setup step (certificates, per-node
// flags) run before the nodes start.
func newClusterWith(t *testing.T, n int, setup func(c *cluster), flags ...string) *cluster {
	t.Helper()
	c := &cluster{t: t, root: t.TempDir(), nodes: map[string]*node{}, flags: flags}
	var peers []string
	ports := freePorts(t, 3*n)
	for i := 0; i < n; i++ {
		id := string(rune('a' + i))
		nd := &node{id: id, dir: filepath.Join(c.root, id), raft: ports[3*i], apiAddr: ports[3*i+1], httpA: ports[3*i+2]}
		c.nodes[id] = nd
		c.order = append(c.order, id)
		peers = append(peers, id+"="+nd.raft)
	}
	// Every start, first or not, passes the same -bootstrap: a node with
	// state ignores it, as an operator restarting with the same flags
	// expects.
	c.flags = append(c.flags, "-bootstrap", strings.Join(peers, ","))
	if setup != nil {
		setup(c)
	}
	for _, id := range c.order {
		c.start(id)
	}
	t.Cleanup(c.stopAll)
	return c
}

func (c *cluster) args(nd *node, extra ...string) []string {
	args := []string{"-id", nd.id, "-data-dir", nd.dir, "-raft-addr", nd.raft, "-api-addr", nd.apiAddr, "-http-addr", nd.httpA, "-log-level", "info", "-data-root", os.TempDir()}
	args = append(args, c.flags...)
	args = append(args, c.nodeFlags[nd.id]...)
	return append(args, extra...)
}

// start runs a node's process (again) with its usual flags plus extra.
func (c *cluster) start(id string, extra ...string) {
	c.t.Helper()
	nd := c.nodes[id]
	logf, err := os.OpenFile(filepath.Join(c.root, id+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(binDir, "schedd"), c.args(nd, extra...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	nd.cmd, nd.log, nd.done, nd.stopping = cmd, logf, make(chan struct{}), false
	go func() {
		nd.exit = cmd.Wait()
		logf.Close()
		close(nd.done)
	}()
}

// checkAlive fails the test when a node that should run has exited.
func (c *cluster) checkAlive() {
	c.t.Helper()
	for _, id := range c.order {
		nd := c.nodes[id]
		if nd.cmd == nil || nd.stopping {
			continue
		}
		select {
		case <-nd.done:
			b, _ := os.ReadFile(filepath.Join(c.root, id+".log"))
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			c.t.Fatalf("node %s exited unexpectedly (%v):\n%s", id, nd.exit, strings.Join(lines[max(0, len(lines)-5):], "\n"))
		default:
		}
	}
}

func (c *cluster) signal(id string, sig syscall.Signal) {
	c.t.Helper()
	nd := c.nodes[id]
	if nd.cmd == nil {
		return
	}
	nd.stopping = true
	nd.cmd.Process.Signal(sig)
	select {
	case <-nd.done:
	case <-time.After(20 * time.Second):
		c.t.Fatalf("node %s did not exit after %s", id, sig)
	}
	nd.cmd = nil
}

func (c *cluster) kill(id string) { c.signal(id, syscall.SIGKILL) }
func (c *cluster) term(id string) { c.signal(id, syscall.SIGTERM) }

func (c *cluster) stopAll() {
	for _, id := range c.order {
		if nd := c.nodes[id]; nd.cmd != nil {
			nd.cmd.Process.Kill()
			<-nd.done
			nd.cmd = nil
		}
	}
	if c.t.Failed() {
		for _, id := range c.order {
			b, _ := os.ReadFile(filepath.Join(c.root, id+".log"))
			lines := strings.Split(string(b), "\n")
			c.t.Logf("--- last lines of node %s's log:\n%s", id, strings.Join(lines[max(0, len(lines)-25):], "\n"))
		}
	}
}

// client returns a client for the given nodes (all when none given).
func (c *cluster) client(ids ...string) *client.Client {
	c.t.Helper()
	if len(ids) == 0 {
		ids = c.order
	}
	var addrs []string
	for _, id := range ids {
		addrs = append(addrs, c.nodes[id].apiAddr)
	}
	opts := c.copts
	opts.RetryFor = 20 * time.Second
	cl, err := client.Dial(addrs, opts)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { cl.Close() })
	return cl
}

// nodeStatus asks one node for its own Raft status.
func (c *cluster) nodeStatus(id string) (*api.NodeStatus, error) {
	opts := c.copts
	opts.RetryFor, opts.CallTimeout = time.Millisecond, 300*time.Millisecond
	cl, err := client.Dial([]string{c.nodes[id].apiAddr}, opts)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	st, err := cl.Status(context.Background())
	if err != nil {
		return nil, err
	}
	return st.Node, nil
}

// waitLeader polls the live nodes until one of them (other than not)
// reports itself leader, and returns it and how long that took.
func (c *cluster) waitLeader(not string) (string, time.Duration) {
	c.t.Helper()
	start := time.Now()
	deadline := start.Add(20 * time.Second)
	for time.Now().Before(deadline) {
		c.checkAlive()
		for _, id := range c.order {
			if id == not || c.nodes[id].cmd == nil {
				continue
			}
			if st, err := c.nodeStatus(id); err == nil && st.State == "Leader" {
				return id, time.Since(start)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.t.Fatalf("no leader among the live nodes within 20s")
	return "", 0
}

// waitFor polls cond until it holds or 20s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// batonctl runs the CLI and returns its stdout, stderr and exit code.
func batonctl(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "batonctl"), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// schedd runs schedd expecting it to exit by itself.
func schedd(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "schedd"), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); ok {
			return out.String(), ee.ExitCode()
		}
		return out.String(), 0
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("schedd %v did not exit: %s", args, out.String())
		return "", -1
	}
}
