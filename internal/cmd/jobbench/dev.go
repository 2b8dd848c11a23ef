package main

import (
	"context"
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/baton-sched/baton/client"
	"github.com/baton-sched/baton/internal/localcluster"
)

// devNode is a `schedd -dev` process: a single-node quorum with an
// embedded executor, the baseline the replication tax is read against.
type devNode struct {
	cmd *exec.Cmd
	dir string
}

// startDev starts `schedd -dev -dev-cores cores` from bin on free ports
// and returns it with a client once its executor is registered.
func startDev(ctx context.Context, bin string, cores int) (*devNode, *client.Client, error) {
	ports, err := localcluster.FreePorts(3)
	if err != nil {
		return nil, nil, err
	}
	dir, err := os.MkdirTemp("", "baton-jobbench-dev-")
	if err != nil {
		return nil, nil, err
	}
	log, err := os.Create(filepath.Join(dir, "schedd.log"))
	if err != nil {
		return nil, nil, err
	}
	defer log.Close()
	cmd := exec.Command(filepath.Join(bin, "schedd"), "-dev", "-dev-cores", fmt.Sprint(cores), "-log-level", "warn",
		"-raft-addr", ports[0], "-api-addr", ports[1], "-http-addr", ports[2])
	cmd.Stdout, cmd.Stderr, cmd.Dir = log, log, dir
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	d := &devNode{cmd: cmd, dir: dir}
	cl, err := client.Dial([]string{ports[1]}, client.Options{})
	if err != nil {
		d.Close()
		return nil, nil, err
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		execs, err := cl.Executors(cctx)
		cancel()
		if err == nil && len(execs) > 0 {
			return d, cl, nil
		}
		if time.Now().After(deadline) {
			cl.Close()
			d.Close()
			return nil, nil, fmt.Errorf("jobbench: schedd -dev has no executor after 60s (last error: %v); its log is in %s", err, dir)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Close stops the process and removes its directory.
func (d *devNode) Close() {
	d.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { d.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		d.cmd.Process.Kill()
		<-done
	}
	os.RemoveAll(d.dir)
}

//go:embed dask_empty.py
var daskScript []byte

// daskTasks is -dask-tasks.
var daskTasks int

// daskBaseline runs the same kind of job on Dask distributed (Debian's
// python3-distributed, which make bench installs) and prints its rate.
func daskBaseline(ctx context.Context) error {
	// Debian's python3, which python3-distributed is installed for (a
	// python3 earlier on PATH, pyenv's say, does not have it).
	py := "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		if py, err = exec.LookPath("python3"); err != nil {
			return err
		}
	}
	dir, err := os.MkdirTemp("", "baton-jobbench-dask-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	script := filepath.Join(dir, "dask_empty.py")
	if err := os.WriteFile(script, daskScript, 0o644); err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(cctx, py, script, fmt.Sprint(daskTasks))
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return fmt.Errorf("%w: %s", err, lastLine(ee.Stderr))
		}
		return err
	}
	var n int
	var secs float64
	if _, err := fmt.Sscan(string(out), &n, &secs); err != nil || secs <= 0 {
		return fmt.Errorf("unexpected output %q", out)
	}
	fmt.Printf("  %-48s %8.0f tasks/s (%d tasks in %.3fs; 2 workers x 4 threads, submit to end)\n", "Dask distributed "+daskVersion(py), float64(n)/secs, n, secs)
	return nil
}

func daskVersion(py string) string {
	out, err := exec.Command(py, "-c", "import distributed; print(distributed.__version__)").Output()
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(out))
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}
