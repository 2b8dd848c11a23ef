package devcluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/baton-sched/baton/dag"
	"github.com/baton-sched/baton/executor"
	"github.com/baton-sched/baton/internal/localcluster"
	"github.com/baton-sched/baton/internal/server"
	"github.com/baton-sched/baton/ops"
	"github.com/baton-sched/baton/raftnet"
)

// Options configure a dev cluster. Zero fields take the defaults on each.
type Options struct {
	// Dir holds the cluster's data; empty makes a temporary directory
	// that Close removes.
	Dir string
	// Server configures the node; its ID, DataDir and Bootstrap are set
	// here, and its addresses default to free loopback ports.
	Server server.Config
	// Cores are the executor's slots (default: the CPU count).
	Cores int
	// Registry holds the executor's functions (default: the built-ins).
	Registry *ops.Registry
	Logger   *slog.Logger
}

// Cluster is a running dev cluster.
type Cluster struct {
	Server   *server.Server
	Executor *executor.Executor
	dir      string
	tmp      bool
	cancel   context.CancelFunc
	done     chan struct{}
}

// Start starts the node and the executor, and returns once the node leads
// and the executor is registered.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	c := &Cluster{dir: opts.Dir, done: make(chan struct{})}
	if c.dir == "" {
		d, err := os.MkdirTemp("", "baton-dev-")
		if err != nil {
			return nil, fmt.Errorf("devcluster: %w", err)
		}
		c.dir, c.tmp = d, true
	}
	cfg := opts.Server
	if cfg.ID == "" {
		cfg.ID = "dev"
	}
	if cfg.Logger == nil {
		cfg.Logger = opts.Logger
	}
	for _, a := range []*string{&cfg.RaftAddr, &cfg.APIAddr} {
		if *a == "" {
			*a = "127.0.0.1:0"
		}
	}
	cfg.DataDir = filepath.Join(c.dir, "schedd")
	if cfg.RaftAddr == "127.0.0.1:0" {
		// Raft needs its address before it listens.
		ports, err := localcluster.FreePorts(1)
		if err != nil {
			return nil, c.fail(err)
		}
		cfg.RaftAddr = ports[0]
	}
	cfg.Bootstrap = []raftnet.Peer{{ID: cfg.ID, Addr: cfg.RaftAddr}}
	s, err := server.New(cfg)
	if err != nil {
		return nil, c.fail(err)
	}
	c.Server = s
	e, err := executor.New(executor.Options{ID: "dev-exec", DataDir: filepath.Join(c.dir, "execd"), Schedulers: []string{s.APIAddr()},
		Cores: opts.Cores, Registry: opts.Registry, Logger: opts.Logger, NoExit: true})
	if err != nil {
		return nil, c.fail(err)
	}
	c.Executor = e
	rctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	go func() { e.Run(rctx); close(c.done) }()
	for {
		if st, _ := s.GetNodeStatus(ctx, nil); st != nil && st.Driving && registered(s) {
			return c, nil
		}
		select {
		case <-ctx.Done():
			c.Close()
			return nil, fmt.Errorf("devcluster: not ready: %w", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Addr is the node's API address, for clients.
func (c *Cluster) Addr() string { return c.Server.APIAddr() }

// Dir is the cluster's directory.
func (c *Cluster) Dir() string { return c.dir }

// Close stops the executor and the node and removes a temporary
// directory.
func (c *Cluster) Close() error {
	var errs []error
	if c.Executor != nil {
		c.cancel()
		<-c.done
		errs = append(errs, c.Executor.Close())
	}
	if c.Server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		errs = append(errs, c.Server.Close(ctx))
		cancel()
	}
	if c.tmp {
		os.RemoveAll(c.dir)
	}
	return errors.Join(errs...)
}

// registered reports whether the executor is registered.
func registered(s *server.Server) bool {
	ok := false
	s.FSM().Read(func(st *dag.State) {
		for _, e := range st.Executors() {
			ok = ok || e.Alive
		}
	})
	return ok
}

func (c *Cluster) fail(err error) error {
	c.Close()
	return fmt.Errorf("devcluster: %w", err)
}
