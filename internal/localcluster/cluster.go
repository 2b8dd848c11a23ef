package localcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/client"
	"github.com/baton-sched/baton/tlsconf"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// Options describe a cluster.
type Options struct {
	// Bin is the directory holding schedd and execd; empty builds them
	// into the cluster's directory.
	Bin string
	// Dir is the cluster's directory; empty makes a temporary one that
	// Close removes.
	Dir string
	// Schedulers and Executors count the processes (default 3 and 2).
	Schedulers, Executors int
	// Cores per executor (default 4).
	Cores int
	// DataRoots are the directories plans may read and write files under
	// (-data-root on every process); default the system's temporary
	// directory and Dir.
	DataRoots []string
	// SchedFlags and ExecFlags are extra flags for every process.
	SchedFlags, ExecFlags []string
	// Log receives the processes' output; nil writes it to files in Dir.
	Log io.Writer
	// Secure runs the cluster as production should: a CA and a
	// certificate per process (mutual TLS on every connection), ACLs
	// bootstrapped once the quorum is up, executors joining with an
	// executor token, and the cluster's clients carrying the management
	// token.
	Secure bool
}

// Proc is one process of the cluster.
type Proc struct {
	Name                              string
	Kind                              string // "schedd" or "execd"
	Dir                               string
	RaftAddr, APIAddr, HTTPAddr, Addr string
	args                              []string
	mu                                sync.Mutex
	cmd                               *exec.Cmd
	done                              chan struct{}
	restartErr                        string
	started                           time.Time
}

// Running reports whether the process runs.
func (p *Proc) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil
}

// Pid returns the process id, or 0 when it does not run.
func (p *Proc) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Cluster is a running local cluster.
type Cluster struct {
	opts Options
	// pki holds the certificates (Secure), by "role/name"; token is the
	// management token.
	pki       map[string]tlsconf.Files
	clientTLS *tlsconf.Config // the cluster's own client certificate, loaded once
	token     string
	execToken string
	dir       string
	tmp       bool
	Scheds    []*Proc
	Execs     []*Proc
	conns     map[string]*grpc.ClientConn
	mu        sync.Mutex
}

// Start builds the binaries if needed and starts the cluster; it returns
// once a leader is elected and every executor is registered.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if opts.Schedulers <= 0 {
		opts.Schedulers = 3
	}
	if opts.Executors < 0 {
		opts.Executors = 0
	} else if opts.Executors == 0 {
		opts.Executors = 2
	}
	if opts.Cores <= 0 {
		opts.Cores = 4
	}
	c := &Cluster{opts: opts, dir: opts.Dir, conns: map[string]*grpc.ClientConn{}}
	if c.dir != "" {
		if err := os.MkdirAll(c.dir, 0o755); err != nil {
			return nil, err
		}
	} else {
		d, err := os.MkdirTemp("", "baton-cluster-")
		if err != nil {
			return nil, err
		}
		c.dir, c.tmp = d, true
	}
	if c.opts.Bin == "" {
		c.opts.Bin = filepath.Join(c.dir, "bin")
		if err := Build(c.opts.Bin); err != nil {
			c.Close()
			return nil, err
		}
	}
	ports, err := FreePorts(3*opts.Schedulers + 2*opts.Executors)
	if err != nil {
		c.Close()
		return nil, err
	}
	var peers []string
	for i := 0; i < opts.Schedulers; i++ {
		p := &Proc{Name: fmt.Sprintf("s%d", i+1), Kind: "schedd", RaftAddr: ports[3*i], APIAddr: ports[3*i+1], HTTPAddr: ports[3*i+2]}
		p.Dir = filepath.Join(c.dir, p.Name)
		peers = append(peers, p.Name+"="+p.RaftAddr)
		c.Scheds = append(c.Scheds, p)
	}
	roots := opts.DataRoots
	if len(roots) == 0 {
		roots = []string{os.TempDir(), c.dir}
	}
	var rootFlags []string
	for _, r := range roots {
		rootFlags = append(rootFlags, "-data-root", r)
	}
	if opts.Secure {
		reqs := []tlsconf.CertRequest{{Role: tlsconf.RoleClient, Name: "localcluster"}}
		for _, p := range c.Scheds {
			reqs = append(reqs, tlsconf.CertRequest{Role: tlsconf.RoleServer, Name: p.Name})
		}
		for i := 0; i < opts.Executors; i++ {
			reqs = append(reqs, tlsconf.CertRequest{Role: tlsconf.RoleExecutor, Name: fmt.Sprintf("e%d", i+1)})
		}
		os.MkdirAll(filepath.Join(c.dir, "pki"), 0o700)
		if c.pki, err = tlsconf.TestPKI(filepath.Join(c.dir, "pki"), reqs...); err != nil {
			c.Close()
			return nil, fmt.Errorf("localcluster: certificates: %w", err)
		}
		if c.clientTLS, err = tlsconf.Load(c.pki[tlsconf.RoleClient+"/localcluster"]); err != nil {
			c.Close()
			return nil, fmt.Errorf("localcluster: %w", err)
		}
	}
	for _, p := range c.Scheds {
		p.args = append([]string{"-id", p.Name, "-data-dir", p.Dir, "-raft-addr", p.RaftAddr, "-api-addr", p.APIAddr,
			"-http-addr", p.HTTPAddr, "-bootstrap", strings.Join(peers, ",")}, append(append(append(rootFlags, c.aclFlags()...), c.tlsFlags(tlsconf.RoleServer, p.Name)...), opts.SchedFlags...)...)
		if err := c.Restart(p); err != nil {
			c.Close()
			return nil, err
		}
	}
	if opts.Secure {
		if err := c.bootstrapACL(ctx); err != nil {
			c.Close()
			return nil, err
		}
	}
	for i := 0; i < opts.Executors; i++ {
		p := &Proc{Name: fmt.Sprintf("e%d", i+1), Kind: "execd", Addr: ports[3*opts.Schedulers+2*i], HTTPAddr: ports[3*opts.Schedulers+2*i+1]}
		p.Dir = filepath.Join(c.dir, p.Name)
		p.args = append([]string{"-id", p.Name, "-data-dir", p.Dir, "-schedulers", strings.Join(c.APIAddrs(), ","), "-addr", p.Addr,
			"-http-addr", p.HTTPAddr, "-cores", fmt.Sprint(opts.Cores)}, append(append(rootFlags, c.tlsFlags(tlsconf.RoleExecutor, p.Name)...), opts.ExecFlags...)...)
		if opts.Secure {
			p.args = append(p.args, "-token", c.execToken)
		}
		c.Execs = append(c.Execs, p)
		if err := c.Restart(p); err != nil {
			c.Close()
			return nil, err
		}
	}
	if _, err := c.WaitLeader(ctx, nil, 0); err != nil {
		c.Close()
		return nil, err
	}
	if err := c.WaitExecutors(ctx, opts.Executors); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Build compiles schedd, execd and batonctl into dir.
func Build(dir string) error {
	cmd := exec.Command("go", "build", "-o", dir+"/", "github.com/baton-sched/baton/cmd/...")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("localcluster: build: %w", err)
	}
	return nil
}

// Dir returns the cluster's directory.
func (c *Cluster) Dir() string { return c.dir }

// Bin returns the directory of the binaries.
func (c *Cluster) Bin() string { return c.opts.Bin }

// APIAddrs returns the schedulers' API addresses.
func (c *Cluster) APIAddrs() []string {
	var out []string
	for _, p := range c.Scheds {
		out = append(out, p.APIAddr)
	}
	return out
}

// tlsFlags are a process's certificate flags (none unless Secure).
func (c *Cluster) tlsFlags(role, name string) []string {
	f, ok := c.pki[role+"/"+name]
	if !ok {
		return nil
	}
	return []string{"-ca-file", f.CA, "-cert-file", f.Cert, "-key-file", f.Key}
}

// aclFlags are the members' ACL flags: a secure cluster runs with -acl.
func (c *Cluster) aclFlags() []string {
	if len(c.pki) == 0 {
		return nil
	}
	return []string{"-acl"}
}

// bootstrapACL turns the ACLs on and makes the executors' token.
func (c *Cluster) bootstrapACL(ctx context.Context) error {
	if _, err := c.WaitLeader(ctx, nil, 0); err != nil {
		return err
	}
	cl, err := c.Client()
	if err != nil {
		return err
	}
	defer cl.Close()
	boot, err := cl.ACLBootstrap(ctx)
	if err != nil {
		return fmt.Errorf("localcluster: acl bootstrap: %w", err)
	}
	c.mu.Lock()
	c.token = boot.Secret
	c.mu.Unlock()
	cl.Close()
	if cl, err = c.Client(); err != nil {
		return err
	}
	exe, err := cl.CreateToken(ctx, "executors", "executor")
	if err != nil {
		return fmt.Errorf("localcluster: executor token: %w", err)
	}
	c.execToken = exe.Secret
	return nil
}

// clusterToken sends the management token, once there is one.
type clusterToken struct{ c *Cluster }

func (t clusterToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	if t.c.token == "" {
		return nil, nil
	}
	return map[string]string{"authorization": "Bearer " + t.c.token}, nil
}

func (clusterToken) RequireTransportSecurity() bool { return false }

// Secure reports whether the cluster runs with TLS and ACLs.
func (c *Cluster) Secure() bool { return c.opts.Secure }

// Token returns the management token ("" unless Secure).
func (c *Cluster) Token() string { return c.token }

// CLIFlags are the batonctl flags that reach this cluster as its
// operator (certificate and token; none unless Secure).
func (c *Cluster) CLIFlags() []string {
	out := c.tlsFlags(tlsconf.RoleClient, "localcluster")
	if c.token != "" {
		out = append(out, "-token", c.token)
	}
	return out
}

// DialCreds are the credentials to dial a process of a role (a client's
// certificate when Secure).
func (c *Cluster) DialCreds(role string) credentials.TransportCredentials {
	if c.clientTLS == nil {
		return insecure.NewCredentials()
	}
	return credentials.NewTLS(c.clientTLS.Client(role))
}

// Client returns a client for the whole quorum.
func (c *Cluster) Client() (*client.Client, error) {
	opts := client.Options{RetryFor: 60 * time.Second, Token: c.token}
	if c.clientTLS != nil {
		opts.TLS = c.clientTLS.Client(tlsconf.RoleServer)
	}
	return client.Dial(c.APIAddrs(), opts)
}

// Restart starts a process that is not running. A process that exits at
// once because its address is taken (another process bound the port while
// it was down) is started again, up to bindRetries times, 300 ms apart;
// RestartError says when it gave up.
func (c *Cluster) Restart(p *Proc) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return fmt.Errorf("localcluster: %s is running", p.Name)
	}
	p.restartErr = ""
	return c.startLocked(p, 0)
}

// bindRetries bounds the restarts of a process that cannot bind.
const bindRetries = 20

// RestartError returns why the process could not be restarted ("" when
// it was, or is being retried).
func (p *Proc) RestartError() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.restartErr
}

func (c *Cluster) startLocked(p *Proc, tries int) error {
	var out io.Writer = c.opts.Log
	var f *os.File
	if out == nil {
		var err error
		if f, err = os.OpenFile(filepath.Join(c.dir, p.Name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
			return err
		}
		out = f
	}
	tail := &tailBuffer{}
	cmd := exec.Command(filepath.Join(c.opts.Bin, p.Kind), p.args...)
	cmd.Stdout, cmd.Stderr = io.MultiWriter(out, tail), io.MultiWriter(out, tail)
	if err := cmd.Start(); err != nil {
		if f != nil {
			f.Close()
		}
		return fmt.Errorf("localcluster: start %s: %w", p.Name, err)
	}
	started := time.Now()
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		if f != nil {
			f.Close()
		}
		close(done)
		if time.Since(started) > 5*time.Second || !tail.contains("address already in use") {
			return
		}
		time.Sleep(300 * time.Millisecond)
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.cmd != cmd {
			return // stopped or restarted meanwhile
		}
		p.cmd = nil
		if tries+1 >= bindRetries {
			p.restartErr = fmt.Sprintf("%s could not bind its addresses (%d tries): %s", p.Name, tries+1, tail.lastLine())
			return
		}
		if err := c.startLocked(p, tries+1); err != nil {
			p.restartErr = err.Error()
		}
	}()
	p.cmd, p.done, p.started = cmd, done, started
	return nil
}

// Up reports whether the process runs and has run for at least d (a
// process that cannot bind its addresses exits within milliseconds).
func (p *Proc) Up(d time.Duration) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd != nil && time.Since(p.started) >= d
}

// tailBuffer keeps the last few KiB a process wrote.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tailBuffer) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, b...)
	if len(t.buf) > 8<<10 {
		t.buf = append(t.buf[:0:0], t.buf[len(t.buf)-(4<<10):]...)
	}
	return len(b), nil
}

func (t *tailBuffer) contains(s string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Contains(string(t.buf), s)
}

func (t *tailBuffer) lastLine() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := strings.Split(strings.TrimSpace(string(t.buf)), "\n")
	return lines[len(lines)-1]
}

// Signal sends a signal to a process and, for a fatal one, waits for it to
// exit.
func (c *Cluster) Signal(p *Proc, sig syscall.Signal) error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return fmt.Errorf("localcluster: %s is not running", p.Name)
	}
	if err := cmd.Process.Signal(sig); err != nil {
		return err
	}
	if sig != syscall.SIGKILL && sig != syscall.SIGTERM && sig != syscall.SIGINT {
		return nil
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		return fmt.Errorf("localcluster: %s did not exit after %s", p.Name, sig)
	}
	p.mu.Lock()
	p.cmd = nil
	p.mu.Unlock()
	return nil
}

// Kill SIGKILLs a process and waits for it to die.
func (c *Cluster) Kill(p *Proc) error { return c.Signal(p, syscall.SIGKILL) }

// Operator returns an Operator client for one scheduler.
func (c *Cluster) Operator(p *Proc) (api.OperatorClient, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cc, ok := c.conns[p.APIAddr]
	if !ok {
		var err error
		cc, err = grpc.NewClient(p.APIAddr, grpc.WithTransportCredentials(c.DialCreds(tlsconf.RoleServer)), grpc.WithPerRPCCredentials(clusterToken{c}),
			grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{BaseDelay: 10 * time.Millisecond, Multiplier: 1.6, MaxDelay: 100 * time.Millisecond}, MinConnectTimeout: time.Second}))
		if err != nil {
			return nil, err
		}
		c.conns[p.APIAddr] = cc
	}
	return api.NewOperatorClient(cc), nil
}

// NodeStatus asks one scheduler for its Raft status.
func (c *Cluster) NodeStatus(ctx context.Context, p *Proc) (*api.NodeStatus, error) {
	op, err := c.Operator(p)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	return op.GetNodeStatus(ctx, &api.NodeStatusRequest{})
}

// WaitLeader polls the running schedulers but not until one reports
// itself leader in a term above after, and returns it.
func (c *Cluster) WaitLeader(ctx context.Context, not *Proc, after uint64) (*Proc, error) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, p := range c.Scheds {
			if p == not || !p.Running() {
				continue
			}
			if st, err := c.NodeStatus(ctx, p); err == nil && st.State == "Leader" && st.Term > after {
				return p, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
	return nil, errors.New("localcluster: no leader within 30s")
}

// Leader returns the current leader and its term.
func (c *Cluster) Leader(ctx context.Context) (*Proc, uint64, error) {
	p, err := c.WaitLeader(ctx, nil, 0)
	if err != nil {
		return nil, 0, err
	}
	st, err := c.NodeStatus(ctx, p)
	if err != nil {
		return nil, 0, err
	}
	return p, st.Term, nil
}

// WaitExecutors waits until n executors are alive in the state.
func (c *Cluster) WaitExecutors(ctx context.Context, n int) error {
	cl, err := c.Client()
	if err != nil {
		return err
	}
	defer cl.Close()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		ex, err := cl.Executors(ctx)
		alive := 0
		for _, e := range ex {
			if e.Alive {
				alive++
			}
		}
		if err == nil && alive >= n {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("localcluster: fewer than %d executors alive after 30s", n)
}

// Close kills every process and removes a temporary directory.
func (c *Cluster) Close() {
	for _, p := range append(append([]*Proc{}, c.Scheds...), c.Execs...) {
		if p.Running() {
			c.Kill(p)
		}
	}
	c.mu.Lock()
	for _, cc := range c.conns {
		cc.Close()
	}
	c.mu.Unlock()
	if c.tmp {
		os.RemoveAll(c.dir)
	}
}

// FreePorts returns n distinct free loopback addresses, chosen below the
// kernel's ephemeral port range: the ports of a process that is down are
// then not handed to other processes' outgoing connections, so it can bind
// them again when restarted.
func FreePorts(n int) ([]string, error) {
	lo, hi := portRange()
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	var out []string
	for tries := 0; len(out) < n && tries < 100*n; tries++ {
		addr := "127.0.0.1:0"
		if hi > lo {
			addr = fmt.Sprintf("127.0.0.1:%d", lo+mrand.IntN(hi-lo))
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().String())
	}
	if len(out) < n {
		return nil, fmt.Errorf("localcluster: found %d of %d free ports", len(out), n)
	}
	return out, nil
}

// portRange returns ports to choose from: [10000, the start of the
// ephemeral range), or nothing when that range cannot be read.
func portRange() (int, int) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0
	}
	f := strings.Fields(string(b))
	if len(f) < 1 {
		return 0, 0
	}
	start, err := strconv.Atoi(f[0])
	if err != nil || start <= 11000 {
		return 0, 0
	}
	return 10000, start
}
