// Command schedd is a Baton scheduler node: one member of the Raft quorum
// that replicates the scheduler state. Run three.
//
//	schedd -id a -data-dir /var/lib/baton/a -raft-addr 127.0.0.1:7001 \
//	       -api-addr 127.0.0.1:7101 -http-addr 127.0.0.1:7201 \
//	       -bootstrap a=127.0.0.1:7001,b=127.0.0.1:7002,c=127.0.0.1:7003
//
// A node restarted with the flags it first ran with recovers its state from
// its data directory (-bootstrap is ignored once there is state). A new
// node joins a running quorum with -join and the API address of any member.
// SIGTERM or SIGINT stops a node gracefully (a leader hands leadership to a
// follower first); with -leave-on-terminate it also leaves the quorum.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/baton-sched/baton/driver"
	"github.com/baton-sched/baton/internal/server"
	"github.com/baton-sched/baton/ops"
	"github.com/baton-sched/baton/raftnet"
	"github.com/baton-sched/baton/tlsconf"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := run(ctx, os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}

// run parses flags and runs a node until ctx ends (a signal). Exit codes:
// 0 after a clean stop, 1 on a runtime error, 2 on a usage error.
func run(ctx context.Context, args []string, stderr io.Writer) int {
	cfg, logger, dev, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "schedd:", err)
		fmt.Fprintln(stderr, "run 'schedd -h' for the flags")
		return 2
	}
	// A node that cannot apply its log stops at once, saying why.
	cfg.Fatal = func(err error) {
		fmt.Fprintln(stderr, "schedd:", err)
		os.Exit(1)
	}
	if dev {
		return runDev(ctx, cfg, logger, stderr)
	}
	s, err := server.New(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "schedd:", err)
		return 1
	}
	<-ctx.Done()
	logger.Info("stopping")
	cctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := s.Close(cctx); err != nil {
		fmt.Fprintln(stderr, "schedd: stop:", err)
		return 1
	}
	return 0
}

// devCores is -dev-cores.
var devCores int

func parseFlags(args []string, stderr io.Writer) (server.Config, *slog.Logger, bool, error) {
	var cfg server.Config
	fs := flag.NewFlagSet("schedd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.ID, "id", "", "node id, unique in the quorum (required)")
	fs.StringVar(&cfg.DataDir, "data-dir", "", "directory for the Raft log, stable store and snapshots (required)")
	fs.StringVar(&cfg.RaftAddr, "raft-addr", "127.0.0.1:7001", "Raft TCP address")
	fs.StringVar(&cfg.APIAddr, "api-addr", "127.0.0.1:7101", "gRPC API address")
	fs.StringVar(&cfg.HTTPAddr, "http-addr", "127.0.0.1:7201", "JSON HTTP API address (empty: none)")
	bootstrap := fs.String("bootstrap", "", "initial quorum as id=raftaddr,... (used only when the data directory is empty)")
	join := fs.String("join", "", "API address(es) of running members to join through, comma-separated (used only when the data directory is empty)")
	multiplier := fs.Int("raft-multiplier", 1, "scales the Raft timeouts (as Nomad's raft_multiplier, 1 to 10): heartbeat and election timeouts and the leader lease are 200ms times this; raise it on machines too busy to answer in time, at the cost of slower failover")
	fs.DurationVar(&cfg.Raft.HeartbeatTimeout, "heartbeat-timeout", 0, "Raft heartbeat timeout (default 200ms × -raft-multiplier)")
	fs.DurationVar(&cfg.Raft.ElectionTimeout, "election-timeout", 0, "Raft election timeout (default 200ms × -raft-multiplier)")
	fs.DurationVar(&cfg.Raft.LeaderLeaseTimeout, "leader-lease-timeout", 0, "Raft leader lease timeout, at most the heartbeat timeout (default: the heartbeat timeout)")
	fs.DurationVar(&cfg.Raft.CommitTimeout, "commit-timeout", 5*time.Millisecond, "Raft commit timeout")
	fs.Uint64Var(&cfg.Raft.SnapshotThreshold, "snapshot-threshold", 4096, "log entries between snapshots")
	fs.DurationVar(&cfg.Raft.SnapshotInterval, "snapshot-interval", 10*time.Second, "how often to check the snapshot threshold")
	fs.Uint64Var(&cfg.Raft.TrailingLogs, "trailing-logs", 4096, "log entries kept after a snapshot")
	fs.BoolVar(&cfg.LeaveOnTerminate, "leave-on-terminate", false, "leave the quorum on SIGTERM/SIGINT instead of only stopping")
	fs.IntVar(&cfg.JobDefaults.MaxTaskFailures, "max-task-failures", 4, "failures of one task that abort its job, for jobs that set none")
	fs.Int64Var(&cfg.JobDefaults.MaxResultSize, "max-result-size", 1<<30, "bytes of results a job may hold, for jobs that set none")
	lim := server.DefaultLimits()
	fs.Int64Var(&cfg.Limits.MaxJobTasks, "max-job-tasks", lim.MaxJobTasks, "most tasks one job may have (result partitions plus the map partitions of its shuffles)")
	fs.IntVar(&cfg.Limits.MaxPlanDatasets, "max-plan-datasets", lim.MaxPlanDatasets, "most datasets one plan may have")
	fs.IntVar(&cfg.Limits.MaxPlanBytes, "max-plan-bytes", lim.MaxPlanBytes, "largest plan accepted, in bytes on the wire")
	fs.IntVar(&cfg.Limits.MaxInlineRecords, "max-inline-records", lim.MaxInlineRecords, "most inline (parallelize) records one plan may have")
	fs.IntVar(&cfg.Limits.MaxFnArgBytes, "max-fn-arg-bytes", lim.MaxFnArgBytes, "largest arguments of one function, or command line and environment of one pipe, in bytes")
	fs.IntVar(&cfg.Limits.MaxPendingJobs, "max-pending-jobs", lim.MaxPendingJobs, "most jobs running at once; more are refused until some end")
	fs.StringVar(&cfg.Raft.Advertise, "raft-advertise", "", "Raft address peers reach this node at (default: -raft-addr; needed when listening on 0.0.0.0)")
	fs.StringVar(&cfg.APIAdvertise, "api-advertise", "", "API address clients and other members reach this node at (default: -api-addr; needed when listening on 0.0.0.0)")
	fs.StringVar(&cfg.HTTPAdvertise, "http-advertise", "", "HTTP address published for the UI's links (default: -http-addr)")
	fs.DurationVar(&cfg.Driver.ExecutorTimeout, "executor-timeout", 10*time.Second, "an executor silent this long is declared lost")
	fs.DurationVar(&cfg.Driver.HeartbeatInterval, "heartbeat-interval", 500*time.Millisecond, "how often executors report in")
	fs.DurationVar(&cfg.Driver.GracePeriod, "grace-period", 0, "after winning leadership, how long to wait for executors to reconnect before launching (ends early when all are back; default 3×heartbeat-interval + 1s)")
	fs.DurationVar(&cfg.Driver.LocalityWait, "locality-wait", 100*time.Millisecond, "how long a task waits for a slot on an executor holding its input")
	fs.DurationVar(&cfg.Driver.CacheLocalityWait, "cache-locality-wait", 3*time.Second, "how long a task that reads persisted partitions waits for a slot on the executors keeping them, before it computes them elsewhere")
	fs.Int64Var(&cfg.Driver.MaxDirectResultSize, "max-direct-result-size", 64<<10, "largest result sent through the log; larger ones stay on the executor")
	fs.DurationVar(&cfg.Driver.QueuedWork, "queued-work", 20*time.Millisecond, "for stages of very short tasks, queue on each slot as many tasks as take about this long (up to 256; -1ns: never more than -queue-per-slot)")
	fs.IntVar(&cfg.Driver.QueuePerSlot, "queue-per-slot", 3, "for stages of short tasks, tasks each executor slot may have queued beyond its running one (-1: none)")
	mode := fs.String("scheduling-mode", "FIFO", "how jobs share slots: FIFO (in submission order) or FAIR (pools by weight and minimum share)")
	var pools poolFlags
	fs.Var(&pools, "pool", "a FAIR pool: name:weight=W,minShare=M (repeatable; unlisted pools have weight 1, minShare 0)")
	fs.BoolVar(&cfg.Driver.Speculation, "speculation", false, "launch copies of slow tasks on other executors (Spark's speculation)")
	fs.Float64Var(&cfg.Driver.SpeculationMultiplier, "speculation-multiplier", 1.5, "a task is slow when it runs this many times the median of its stage's successful tasks")
	fs.Float64Var(&cfg.Driver.SpeculationQuantile, "speculation-quantile", 0.75, "fraction of a stage's tasks that must have succeeded before speculation")
	fs.DurationVar(&cfg.Driver.SpeculationMinRuntime, "speculation-min-runtime", 100*time.Millisecond, "a task is never speculated before running this long")
	fs.IntVar(&cfg.DAG.MaxFailuresPerExecutor, "max-failures-per-executor", 2, "task failures on one executor that exclude it (for the stage, and for -exclude-timeout when the tasks succeed elsewhere; -1: no exclusion). Part of the replicated state: a quorum keeps the value of the state it started from")
	excludeTimeout := fs.Duration("exclude-timeout", time.Hour, "how long an executor stays excluded for all tasks (replicated state, as -max-failures-per-executor)")
	fs.DurationVar(&cfg.Driver.ReconnectGrace, "executor-reconnect-grace", 3*time.Second, "an executor whose session dropped and did not come back this long is declared lost (its running tasks' failures count toward -max-task-failures)")
	fs.IntVar(&cfg.ProposalBatch, "proposal-batch", 1024, "most commands in one Raft log entry (group commit; 1 turns batching off)")
	var tlsFiles tlsconf.Files
	fs.StringVar(&tlsFiles.CA, "ca-file", "", "the cluster's CA certificate (PEM): with -cert-file and -key-file, every connection is TLS")
	fs.StringVar(&tlsFiles.Cert, "cert-file", "", "this node's server certificate, named after its -id (batonctl tls cert create -server -name ID)")
	fs.StringVar(&tlsFiles.Key, "key-file", "", "the key of -cert-file")
	fs.BoolVar(&cfg.VerifyIncoming, "verify-incoming", true, "with TLS, require a certificate of the CA from every API caller (clients, executors, members)")
	confine := &ops.Confinement{}
	fs.Func("data-root", "a directory plans' textFile may read and saveAsTextFile write under, as on the executors (repeatable; default: none, except with -dev)", func(v string) error {
		if !filepath.IsAbs(v) {
			return fmt.Errorf("%q is not an absolute path", v)
		}
		confine.DataRoots = append(confine.DataRoots, filepath.Clean(v))
		return nil
	})
	fs.StringVar(&confine.S3EndpointURL, "s3-endpoint", "", "the S3-compatible endpoint s3:// textFile inputs are listed at, at submission, http(s)://host[:port] (default $AWS_ENDPOINT_URL, else AWS); credentials come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN or ~/.aws/credentials")
	fs.StringVar(&cfg.Token, "token", os.Getenv("BATON_TOKEN"), "the ACL token (operator or management) a new node presents when it -join's a quorum whose ACLs are on (default $BATON_TOKEN)")
	fs.BoolVar(&cfg.ACL, "acl", false, "the cluster runs with ACLs: until this member holds the ACL bootstrap, refuse every call but the bootstrap and its own status (give it to every member)")
	fs.BoolVar(&cfg.Insecure, "insecure", false, "allow listening on non-loopback addresses without TLS (anyone who reaches them controls the cluster)")
	fs.BoolVar(&cfg.Pprof, "pprof", false, "serve net/http/pprof under /debug/pprof/ on -http-addr")
	dev := fs.Bool("dev", false, "development mode: a single-node quorum and an embedded executor in a temporary directory (no other flag needed)")
	fs.IntVar(&devCores, "dev-cores", 0, "with -dev: the embedded executor's slots (default: the CPU count)")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: schedd -id ID -data-dir DIR [-bootstrap id=addr,... | -join addr] [flags]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return cfg, nil, false, err
	}
	if fs.NArg() > 0 {
		return cfg, nil, false, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	var errs []error
	cfg.DAG.ExcludeTimeout = int64(*excludeTimeout)
	cfg.Confine = confine
	if *dev {
		// Development mode confines nothing: any path, any program.
		cfg.Confine = &ops.Confinement{Open: true, S3EndpointURL: confine.S3EndpointURL}
		if cfg.ID == "" {
			cfg.ID = "dev"
		}
		if cfg.DataDir != "" || *bootstrap != "" || *join != "" {
			errs = append(errs, errors.New("-dev makes its own quorum in a temporary directory: no -data-dir, -bootstrap or -join"))
		}
	} else {
		if cfg.ID == "" {
			errs = append(errs, errors.New("-id is required"))
		}
		if cfg.DataDir == "" {
			errs = append(errs, errors.New("-data-dir is required"))
		}
	}
	if *bootstrap != "" && *join != "" {
		errs = append(errs, errors.New("-bootstrap and -join are exclusive"))
	}
	if *bootstrap != "" {
		peers, err := raftnet.ParsePeers(*bootstrap)
		if err != nil {
			errs = append(errs, fmt.Errorf("-bootstrap: %w", err))
		}
		cfg.Bootstrap = peers
	}
	for _, a := range strings.Split(*join, ",") {
		if a = strings.TrimSpace(a); a != "" {
			cfg.Join = append(cfg.Join, a)
		}
	}
	switch m := strings.ToUpper(*mode); m {
	case driver.ModeFIFO, driver.ModeFair:
		cfg.Driver.SchedulingMode = m
	default:
		errs = append(errs, fmt.Errorf("-scheduling-mode must be FIFO or FAIR, got %q", *mode))
	}
	cfg.Driver.Pools = pools.m
	if len(pools.m) > 0 && cfg.Driver.SchedulingMode != driver.ModeFair {
		errs = append(errs, errors.New("-pool needs -scheduling-mode FAIR"))
	}
	if q := cfg.Driver.SpeculationQuantile; q <= 0 || q > 1 {
		errs = append(errs, fmt.Errorf("-speculation-quantile must be in (0, 1], got %v", q))
	}
	if cfg.Driver.SpeculationMultiplier < 1 {
		errs = append(errs, fmt.Errorf("-speculation-multiplier must be >= 1, got %v", cfg.Driver.SpeculationMultiplier))
	}
	if *multiplier < 1 || *multiplier > 10 {
		errs = append(errs, fmt.Errorf("-raft-multiplier must be 1 to 10, got %d", *multiplier))
	}
	base := time.Duration(max(*multiplier, 1)) * 200 * time.Millisecond
	if cfg.Raft.HeartbeatTimeout == 0 {
		cfg.Raft.HeartbeatTimeout = base
	}
	if cfg.Raft.ElectionTimeout == 0 {
		cfg.Raft.ElectionTimeout = base
	}
	if cfg.Raft.LeaderLeaseTimeout == 0 {
		cfg.Raft.LeaderLeaseTimeout = cfg.Raft.HeartbeatTimeout
	}
	if cfg.Raft.LeaderLeaseTimeout > cfg.Raft.HeartbeatTimeout {
		errs = append(errs, fmt.Errorf("-leader-lease-timeout %s exceeds -heartbeat-timeout %s", cfg.Raft.LeaderLeaseTimeout, cfg.Raft.HeartbeatTimeout))
	}
	if tlsFiles.Enabled() {
		c, err := tlsconf.Load(tlsFiles)
		if err != nil {
			errs = append(errs, err)
		}
		cfg.TLS = c
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		errs = append(errs, fmt.Errorf("-log-level: %w", err))
	}
	var handler slog.Handler
	switch *logFormat {
	case "text":
		handler = slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})
	case "json":
		handler = slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level})
	default:
		errs = append(errs, fmt.Errorf("-log-format must be text or json, got %q", *logFormat))
	}
	if err := errors.Join(errs...); err != nil {
		return cfg, nil, false, err
	}
	logger := slog.New(handler)
	cfg.Logger = logger
	return cfg, logger, *dev, nil
}

// poolFlags collects -pool name:weight=W,minShare=M flags.
type poolFlags struct{ m map[string]driver.PoolConfig }

func (p *poolFlags) String() string { return "" }

func (p *poolFlags) Set(v string) error {
	name, spec, _ := strings.Cut(v, ":")
	name = strings.TrimSpace(name)
	if name == "" {
		return fmt.Errorf("pool %q: want name:weight=W,minShare=M", v)
	}
	cfg := driver.PoolConfig{Weight: 1}
	for _, kv := range strings.Split(spec, ",") {
		if kv = strings.TrimSpace(kv); kv == "" {
			continue
		}
		k, val, ok := strings.Cut(kv, "=")
		n, err := strconv.Atoi(strings.TrimSpace(val))
		if !ok || err != nil || n < 0 {
			return fmt.Errorf("pool %s: %q: want weight=W or minShare=M with W, M whole numbers", name, kv)
		}
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "weight":
			if n < 1 {
				return fmt.Errorf("pool %s: weight must be >= 1", name)
			}
			cfg.Weight = n
		case "minshare":
			cfg.MinShare = n
		default:
			return fmt.Errorf("pool %s: unknown setting %q (weight, minShare)", name, k)
		}
	}
	if p.m == nil {
		p.m = map[string]driver.PoolConfig{}
	}
	if _, dup := p.m[name]; dup {
		return fmt.Errorf("pool %s given twice", name)
	}
	p.m[name] = cfg
	return nil
}
