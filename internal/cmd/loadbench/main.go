// Command loadbench measures whether a busy machine looks like a dead one
// to Baton's quorum, each figure beside the one it trades against:
//
//   - hogs: a 3-node quorum and 2 executors run a stream of jobs for
//     -duration while busy processes (-hogs, spinning, fsyncing and
//     allocating, at normal priority) keep the 1-minute load average high;
//     it counts leader changes with no node killed;
//
//   - many: the same with -many executors of one slot each on this machine,
//     the baseline settings (a leader lease of half the heartbeat timeout)
//     beside the current ones;
//
//   - idle: leader SIGKILL to the first task the new leader launches (the
//     failover drill's takeover time), baseline beside current.
//
//     go run ./internal/cmd/loadbench
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/client"
	"github.com/baton-sched/baton/internal/drill"
	"github.com/baton-sched/baton/internal/localcluster"
	"github.com/baton-sched/baton/plan"
)

func main() {
	if len(os.Args) > 2 && os.Args[1] == "-hog" {
		hog(os.Args[2])
	}
	os.Exit(run())
}

// hog loads the machine until killed: "cpu" spins; "io" writes and
// fsyncs a file in a loop (disk contention, as a build or a database on
// the same machine makes); "alloc" allocates and drops memory (a busy Go
// or Java process: GC and memory bandwidth).
func hog(kind string) {
	switch kind {
	case "io":
		f, err := os.CreateTemp("", "baton-loadbench-io-")
		if err != nil {
			os.Exit(1)
		}
		defer os.Remove(f.Name())
		buf := make([]byte, 1<<20)
		for i := 0; ; i++ {
			f.WriteAt(buf, int64(i%64)<<20)
			f.Sync()
		}
	case "alloc":
		var keep [][]byte
		for i := 0; ; i++ {
			keep = append(keep, make([]byte, 64<<10))
			if len(keep) > 1024 {
				keep = keep[:0]
			}
		}
	}
	x := 0
	for {
		x++
	}
}

var (
	schedFlags []string
	hogKinds   string
)

// baseline are the Raft settings before this bench chose them: a leader
// lease of half the heartbeat timeout.
var baseline = []string{"-leader-lease-timeout=100ms"}

func run() int {
	duration := flag.Duration("duration", 10*time.Minute, "how long the job stream runs under the hogs")
	hogs := flag.Int("hogs", 10, "processes keeping the machine loaded")
	flag.StringVar(&hogKinds, "hog-kinds", "cpu,io,alloc", "what the hogs do, in turn: cpu (spin), io (write and fsync), alloc (allocate)")
	many := flag.Int("many", 200, "executors (1 slot each) of the many-executors part (0 skips it)")
	manyFor := flag.Duration("many-duration", 2*time.Minute, "how long the job stream runs with -many executors, baseline and current settings each")
	trials := flag.Int("trials", 10, "leader kills timed on the idle machine, baseline and current settings each (0: none)")
	only := flag.String("only", "", "run one part: hogs, many or idle")
	flag.Func("sched-flag", "an extra schedd flag (repeatable), e.g. -sched-flag=-raft-multiplier=2", func(v string) error {
		schedFlags = append(schedFlags, v)
		return nil
	})
	flag.Parse()
	bin, err := os.MkdirTemp("", "baton-loadbench-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadbench:", err)
		return 1
	}
	defer os.RemoveAll(bin)
	if err := localcluster.Build(bin); err != nil {
		fmt.Fprintln(os.Stderr, "loadbench:", err)
		return 1
	}
	ctx := context.Background()
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "loadbench:", err)
		return 1
	}
	if *only == "" || *only == "hogs" {
		if err := underLoad(ctx, bin, "current settings", schedFlags, 2, *duration, *hogs); err != nil {
			return fail(err)
		}
	}
	if (*only == "" || *only == "many") && *many > 0 {
		for _, s := range []struct {
			name  string
			flags []string
		}{{"baseline: lease 100ms", baseline}, {"current settings", schedFlags}} {
			if err := underLoad(ctx, bin, s.name, s.flags, *many, *manyFor, 0); err != nil {
				return fail(err)
			}
		}
	}
	if (*only == "" || *only == "idle") && *trials > 0 {
		for _, s := range []struct {
			name  string
			flags []string
		}{{"baseline: lease 100ms", baseline}, {"current settings", schedFlags}} {
			if err := idleTakeover(ctx, bin, s.name, s.flags, *trials); err != nil {
				return fail(err)
			}
		}
	}
	return 0
}

func underLoad(ctx context.Context, bin, name string, flags []string, executors int, d time.Duration, hogs int) error {
	fmt.Printf("== under load (%s): 3 schedd + %d execd, a job stream for %s, %d hogs (%s) at normal priority, no node killed (target: <= 2 leader changes)\n", name, executors, d, hogs, hogKinds)
	if len(flags) > 0 {
		fmt.Printf("   schedd flags: %s\n", strings.Join(flags, " "))
	}
	cores := 4
	if executors > 8 {
		cores = 1
	}
	c, err := localcluster.Start(ctx, localcluster.Options{Bin: bin, Executors: executors, Cores: cores,
		SchedFlags: append([]string{"-log-level", "warn"}, flags...), ExecFlags: []string{"-log-level", "warn"}})
	if err != nil {
		return err
	}
	defer c.Close()
	cl, err := c.Client()
	if err != nil {
		return err
	}
	defer cl.Close()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	var procs []*exec.Cmd
	for i := 0; i < hogs; i++ {
		kinds := strings.Split(hogKinds, ",")
		cmd := exec.Command(self, "-hog", strings.TrimSpace(kinds[i%len(kinds)]))
		if err := cmd.Start(); err != nil {
			return err
		}
		procs = append(procs, cmd)
	}
	defer func() {
		for _, p := range procs {
			p.Process.Kill()
			p.Wait()
		}
	}()
	// Let the load average climb (and many executors settle) before
	// counting.
	time.Sleep(60 * time.Second)
	_, term0, err := c.Leader(ctx)
	if err != nil {
		return err
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	jobs, failed := 0, 0
	var lastErr error
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, _ := plan.Parse([]byte(`{"name":"stream","datasets":{"r":{"op":"range","n":2000,"partitions":40},
				"k":{"op":"map","input":"r","fn":"pairWithOne"},"g":{"op":"reduceByKey","input":"k","fn":"sum","partitions":8}},
				"action":{"op":"count","input":"g"}}`))
			for {
				select {
				case <-stop:
					return
				default:
				}
				jctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
				id, err := cl.Submit(jctx, p, client.SubmitOptions{})
				if err == nil {
					var j *api.Job
					if j, err = cl.Wait(jctx, id, nil); err == nil && j.State != api.JobState_JOB_STATE_SUCCEEDED {
						err = fmt.Errorf("job %d %s: %s", id, j.State, j.Message)
					}
					cl.Release(jctx, id)
				}
				cancel()
				mu.Lock()
				if err != nil {
					failed++
					lastErr = err
				} else {
					jobs++
				}
				mu.Unlock()
			}
		}()
	}
	// Sample the leader and the load average.
	changes := 0
	lastLeader := ""
	var loads []float64
	start := time.Now()
	for time.Since(start) < d {
		time.Sleep(time.Second)
		if p, _, err := c.Leader(ctx); err == nil {
			if lastLeader != "" && p.Name != lastLeader {
				changes++
			}
			lastLeader = p.Name
		}
		if int(time.Since(start).Seconds())%10 == 0 {
			if l, err := strconv.ParseFloat(strings.Fields(loadavg())[0], 64); err == nil {
				loads = append(loads, l)
			}
		}
	}
	close(stop)
	wg.Wait()
	_, term1, err := c.Leader(ctx)
	if err != nil {
		return err
	}
	sort.Float64s(loads)
	lo, med := 0.0, 0.0
	if len(loads) > 0 {
		lo, med = loads[0], loads[len(loads)/2]
	}
	fmt.Printf("   %d leader changes and %d term changes in %s (%.1f per minute); %d jobs succeeded, %d failed; 1-minute load average min %.1f, median %.1f\n",
		changes, term1-term0, d.Round(time.Second), float64(term1-term0)/d.Minutes(), jobs, failed, lo, med)
	if lastErr != nil {
		fmt.Printf("   last job error: %v\n", lastErr)
	}
	return nil
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

func idleTakeover(ctx context.Context, bin, name string, flags []string, trials int) error {
	fmt.Printf("== idle (%s): leader SIGKILL -> first task launched by the new leader, %d trials (target: median <= 600ms, max <= 1.5s)\n", name, trials)
	rep, err := drill.Run(ctx, drill.Options{Rounds: trials, Kill: "leader", At: "random", Seed: 7, Bin: bin, SchedFlags: flags})
	if err != nil {
		return err
	}
	var ts []float64
	exact := 0
	for _, r := range rep.Rounds {
		if r.TakeoverMs > 0 {
			ts = append(ts, r.TakeoverMs)
		}
		if r.Exact {
			exact++
		}
	}
	sort.Float64s(ts)
	if len(ts) == 0 {
		return fmt.Errorf("no takeover measured")
	}
	fmt.Printf("   takeover median %.0f ms, max %.0f ms over %d takeovers (election median %.0f ms); %d/%d answers exact, %d tasks re-run because of a failover\n",
		ts[len(ts)/2], ts[len(ts)-1], len(ts), rep.ElectionMedianMs, exact, len(rep.Rounds), rep.RerunsFailover)
	return nil
}
