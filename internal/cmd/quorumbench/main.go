// Command quorumbench measures how fast a Baton quorum replaces a dead
// leader: it starts three real schedd processes on loopback (default
// timeouts), then over N trials SIGKILLs the leader and times how long the
// survivors take to elect a new one, restarting the killed node between
// trials. It prints each trial and the median and maximum.
//
//	go run ./internal/cmd/quorumbench -trials 10
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/baton-sched/baton/api"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
)

func main() { os.Exit(run()) }

type proc struct {
	id, raft, apiAddr, dir string
	cmd                    *exec.Cmd
	op                     api.OperatorClient
}

func run() int {
	trials := flag.Int("trials", 10, "leader kills to time")
	flag.Parse()
	if err := bench(*trials); err != nil {
		fmt.Fprintln(os.Stderr, "quorumbench:", err)
		return 1
	}
	return 0
}

func bench(trials int) error {
	root, err := os.MkdirTemp("", "baton-quorumbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	build := exec.Command("go", "build", "-o", root+"/", "github.com/baton-sched/baton/cmd/schedd")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("build schedd: %w", err)
	}
	ports, err := freePorts(6)
	if err != nil {
		return err
	}
	var procs []*proc
	var peers []string
	for i, id := range []string{"a", "b", "c"} {
		p := &proc{id: id, raft: ports[2*i], apiAddr: ports[2*i+1], dir: filepath.Join(root, id)}
		cc, err := grpc.NewClient(p.apiAddr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{BaseDelay: 10 * time.Millisecond, Multiplier: 1.6, MaxDelay: 100 * time.Millisecond}, MinConnectTimeout: time.Second}))
		if err != nil {
			return err
		}
		defer cc.Close()
		p.op = api.NewOperatorClient(cc)
		procs = append(procs, p)
		peers = append(peers, id+"="+p.raft)
	}
	start := func(p *proc) error {
		log, err := os.OpenFile(filepath.Join(root, p.id+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		p.cmd = exec.Command(filepath.Join(root, "schedd"), "-id", p.id, "-data-dir", p.dir, "-raft-addr", p.raft,
			"-api-addr", p.apiAddr, "-http-addr", "", "-bootstrap", strings.Join(peers, ","))
		p.cmd.Stdout, p.cmd.Stderr = log, log
		return p.cmd.Start()
	}
	defer func() {
		for _, p := range procs {
			if p.cmd != nil {
				p.cmd.Process.Kill()
				p.cmd.Wait()
			}
		}
	}()
	t0 := time.Now()
	for _, p := range procs {
		if err := start(p); err != nil {
			return err
		}
	}
	leader, term, err := waitLeader(procs, nil, 0)
	if err != nil {
		return err
	}
	fmt.Printf("bootstrap: 3 processes started, %s leads after %s\n", leader.id, time.Since(t0).Round(time.Millisecond))

	var times []time.Duration
	for i := 1; i <= trials; i++ {
		if err := waitHealthy(procs, leader); err != nil {
			return err
		}
		killed := leader
		t0 := time.Now()
		killed.cmd.Process.Signal(syscall.SIGKILL)
		killed.cmd.Wait()
		killed.cmd = nil
		if leader, term, err = waitLeader(procs, killed, term); err != nil {
			return err
		}
		d := time.Since(t0)
		times = append(times, d)
		fmt.Printf("trial %2d: killed leader %s, %s leads (term %d) after %s\n", i, killed.id, leader.id, term, d.Round(time.Millisecond))
		if err := start(killed); err != nil {
			return err
		}
	}
	sort.Slice(times, func(a, b int) bool { return times[a] < times[b] })
	median := times[len(times)/2]
	if len(times)%2 == 0 {
		median = (times[len(times)/2-1] + times[len(times)/2]) / 2
	}
	fmt.Printf("leader kill -> new leader over %d trials: median %s, max %s (target: median <= 500ms)\n",
		len(times), median.Round(time.Millisecond), times[len(times)-1].Round(time.Millisecond))
	return nil
}

// waitLeader polls every live process but not until one reports itself
// leader in a term above after.
func waitLeader(procs []*proc, not *proc, after uint64) (*proc, uint64, error) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, p := range procs {
			if p == not || p.cmd == nil {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			st, err := p.op.GetNodeStatus(ctx, &api.NodeStatusRequest{})
			cancel()
			if err == nil && st.State == "Leader" && st.Term > after {
				return p, st.Term, nil
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	return nil, 0, fmt.Errorf("no leader within 30s")
}

// waitHealthy waits until every process follows the leader and has
// applied what it has committed.
func waitHealthy(procs []*proc, leader *proc) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		ok := true
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		ls, err := leader.op.GetNodeStatus(ctx, &api.NodeStatusRequest{})
		cancel()
		if err != nil {
			return fmt.Errorf("leader status: %w", err)
		}
		for _, p := range procs {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			st, err := p.op.GetNodeStatus(ctx, &api.NodeStatusRequest{})
			cancel()
			if err != nil || st.LeaderId != leader.id || st.AppliedIndex < ls.CommitIndex {
				ok = false
			}
		}
		if ok {
			// Let heartbeats settle so the next kill starts from a calm
			// cluster.
			time.Sleep(300 * time.Millisecond)
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("cluster not healthy within 30s")
}

func freePorts(n int) ([]string, error) {
	var lns []net.Listener
	var out []string
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().String())
	}
	for _, ln := range lns {
		ln.Close()
	}
	return out, nil
}
