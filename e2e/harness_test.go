// Package e2e runs Baton's real binaries as separate processes on loopback
// and checks what a user would: a quorum that elects a leader, survives
// kills, restarts from its data directories, forwards writes, changes
// membership, and a CLI that reports it.
package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/client"
	"github.com/baton-sched/baton/internal/localcluster"
	"github.com/baton-sched/baton/tlsconf"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
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
	if err := makeCA(filepath.Join(dir, "pki")); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: CA:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// The e2e suite runs its clusters as production should: mutual TLS on
// every connection and ACLs on (plainCluster keeps one plain, for the
// tests that need it; BATON_E2E_PLAIN=1 runs them all plain).
var (
	secureByDefault = os.Getenv("BATON_E2E_PLAIN") == ""
	pkiDir          string
	caCert, caKey   string
	certMu          sync.Mutex
	certs           = map[string]tlsconf.Files{}
	// current is the secure cluster of the running test (nil: none):
	// batonctl and raw connections take its credentials.
	current *cluster
)

func makeCA(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	pkiDir = dir
	var err error
	caCert, caKey, err = tlsconf.WriteCA(dir, "Baton e2e CA", 24*time.Hour)
	return err
}

// certFor returns (making it once) the certificate of a role and name.
func certFor(t testing.TB, role, name string) tlsconf.Files {
	t.Helper()
	certMu.Lock()
	defer certMu.Unlock()
	k := role + "/" + name
	if f, ok := certs[k]; ok {
		return f
	}
	f, err := tlsconf.WriteCert(caCert, caKey, pkiDir, tlsconf.CertRequest{Role: role, Name: name, Valid: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	certs[k] = f
	return f
}

func certFlags(t testing.TB, role, name string) []string {
	f := certFor(t, role, name)
	return []string{"-ca-file", f.CA, "-cert-file", f.Cert, "-key-file", f.Key}
}

// clientTLS is the test's own client certificate, for dialing a role.
func clientTLS(t testing.TB, role string) *tls.Config {
	t.Helper()
	cfg, err := tlsconf.Load(certFor(t, tlsconf.RoleClient, "e2e"))
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Client(role)
}

// plainCluster is a newClusterWith setup that keeps the cluster plain (no
// TLS, no ACLs).
func plainCluster(c *cluster) { c.secure = false }

// dialCreds are the credentials to dial a process of the running test's
// cluster.
func dialCreds(t testing.TB, role string) credentials.TransportCredentials {
	if current == nil {
		return insecure.NewCredentials()
	}
	return credentials.NewTLS(clientTLS(t, role))
}

// withToken adds the running test's management token to a call.
func withToken(ctx context.Context) context.Context {
	if current == nil || current.copts.Token == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+current.copts.Token)
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
	// secure: TLS and ACLs on; execToken is the executors' token.
	secure    bool
	execToken string
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
	c := &cluster{t: t, root: t.TempDir(), nodes: map[string]*node{}, flags: flags, secure: secureByDefault}
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
	if c.secure {
		c.flags = append([]string{"-acl"}, c.flags...) // -bootstrap stays last
		c.nodeFlags = map[string][]string{}
		for _, id := range c.order {
			c.nodeFlags[id] = append(certFlags(t, tlsconf.RoleServer, id), c.nodeFlags[id]...)
		}
		c.copts.TLS = clientTLS(t, tlsconf.RoleServer)
	}
	for _, id := range c.order {
		c.start(id)
	}
	t.Cleanup(c.stopAll)
	if c.secure {
		c.bootstrapACL()
	}
	return c
}

// bootstrapACL turns the ACLs on once a leader is elected, makes the
// executors' token, and makes the cluster the test's current one.
func (c *cluster) bootstrapACL() {
	c.t.Helper()
	c.waitLeader("")
	cl := c.client()
	boot, err := cl.ACLBootstrap(context.Background())
	if err != nil {
		c.t.Fatalf("acl bootstrap: %v", err)
	}
	c.copts.Token = boot.Secret
	// A loaded machine may stall the leader right after the bootstrap:
	// ask again until a generous deadline (a second token is harmless).
	tokens := c.client()
	var last error
	deadline := time.Now().Add(60 * time.Second)
	for c.execToken == "" {
		exe, err := tokens.CreateToken(context.Background(), "executors", "executor")
		switch {
		case err == nil:
			c.execToken = exe.Secret
		case time.Now().After(deadline):
			c.t.Fatalf("executor token: %v (first error: %v)", err, last)
		default:
			if last == nil {
				last = err
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	current = c
	c.t.Cleanup(func() {
		if current == c {
			current = nil
		}
	})
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

// dialOne is a client of one member that does not retry.
func (c *cluster) dialOne(addr string, callTimeout time.Duration) (*client.Client, error) {
	opts := c.copts
	opts.RetryFor, opts.CallTimeout = time.Millisecond, callTimeout
	return client.Dial([]string{addr}, opts)
}

// nodeStatus asks one node for its own Raft status (a call that needs no
// token: a secure cluster runs with -acl, and answers nothing else before
// its bootstrap).
func (c *cluster) nodeStatus(id string) (*api.NodeStatus, error) {
	creds := insecure.NewCredentials()
	if c.copts.TLS != nil {
		creds = credentials.NewTLS(c.copts.TLS)
	}
	cc, err := grpc.NewClient(c.nodes[id].apiAddr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, err
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	return api.NewOperatorClient(cc).GetNodeStatus(ctx, &api.NodeStatusRequest{})
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
	waitUntil(t, 20*time.Second, what, cond)
}

// waitUntil is waitFor with its own deadline, d.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitExecutors waits until the quorum counts n executors alive.
func waitExecutors(t *testing.T, cl *client.Client, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d executors", n), func() bool {
		ex, err := cl.Executors(context.Background())
		alive := 0
		for _, e := range ex {
			if e.Alive {
				alive++
			}
		}
		return err == nil && alive == n
	})
}

// batonctl runs the CLI and returns its stdout, stderr and exit code;
// with a secure cluster running, it holds the test's certificate and the
// management token (BATON_* in its environment; flags win).
func batonctl(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "batonctl"), args...)
	cmd.Env = append(os.Environ(), secureEnv(t)...)
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

// secureEnv is the environment that reaches the running test's secure
// cluster as its operator (none without one).
func secureEnv(t testing.TB) []string {
	if current == nil {
		return nil
	}
	f := certFor(t, tlsconf.RoleClient, "e2e")
	return []string{"BATON_CACERT=" + f.CA, "BATON_CLIENT_CERT=" + f.Cert, "BATON_CLIENT_KEY=" + f.Key, "BATON_TOKEN=" + current.copts.Token}
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
