package ops

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	osexec "os/exec"
	"sort"
	"strings"
	"sync"
	"syscall"
)

type pipeParams struct {
	Command string            `json:"command"`
	Args    []string          `json:"args"`
	Env     map[string]string `json:"env"`
}

// PipeCommand returns the program a pipe node's parameters name.
func PipeCommand(params json.RawMessage) string {
	var p pipeParams
	if json.Unmarshal(params, &p) != nil {
		return ""
	}
	return p.Command
}

// stderrTail keeps the last bytes a program wrote to its standard error.
type stderrTail struct {
	mu  sync.Mutex
	buf []byte
}

const tailSize = 2048

func (t *stderrTail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > tailSize {
		t.buf = append([]byte(nil), t.buf[len(t.buf)-tailSize:]...)
	}
	return len(p), nil
}

func (t *stderrTail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(bytes.TrimSpace(t.buf))
}

// runPipe runs a program on a partition, as Spark's RDD.pipe: each record
// is a line on its standard input (key<TAB>value, or the value alone),
// each line of its standard output a value-only record. A non-zero exit
// fails the task with the tail of the program's standard error.
func runPipe(ctx context.Context, cf *Confinement, ps *pipeParams, in func(func(Record) error) error, emit Emit) error {
	if err := cf.CheckPipe(ps.Command); err != nil {
		return err
	}
	cmd := osexec.CommandContext(ctx, ps.Command, ps.Args...)
	if cf != nil && cf.RunAs != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cf.RunAs}
	}
	// The executor's environment, less its own secrets (BATON_TOKEN and
	// the like); the plan's variables, less those that load code into an
	// allowed program (LD_PRELOAD and the like).
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "BATON_") {
			env = append(env, kv)
		}
	}
	keys := make([]string, 0, len(ps.Env))
	for k := range ps.Env {
		if strings.HasPrefix(k, "LD_") || strings.HasPrefix(k, "DYLD_") || strings.HasPrefix(k, "BATON_") {
			continue
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+ps.Env[k])
	}
	cmd.Env = env
	var tail stderrTail
	cmd.Stderr = &tail
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return fmt.Errorf("pipe: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("pipe: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("pipe: start %s: %w", ps.Command, err)
	}
	// Feed the program while reading its output, so neither side blocks.
	feedErr := make(chan error, 1)
	go func() {
		w := bufio.NewWriterSize(stdin, 64<<10)
		err := in(func(r Record) error {
			if r.HasKey {
				w.Write(r.Key)
				w.WriteByte('\t')
			}
			w.Write(r.Value)
			return w.WriteByte('\n')
		})
		if ferr := w.Flush(); err == nil {
			err = ferr
		}
		stdin.Close()
		if errors.Is(err, os.ErrClosed) || isBrokenPipe(err) {
			err = nil // the program stopped reading: its exit status says why
		}
		feedErr <- err
	}()
	r := bufio.NewReaderSize(stdout, 64<<10)
	var emitErr error
	for {
		line, rerr := r.ReadBytes('\n')
		if len(line) > 0 && emitErr == nil {
			line = bytes.TrimSuffix(line, []byte("\n"))
			line = bytes.TrimSuffix(line, []byte("\r"))
			emitErr = emit(Record{Value: line})
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			emitErr = rerr
			break
		}
	}
	ferr := <-feedErr
	werr := cmd.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	// The input's own failure (a fetch failure, a function's error) comes
	// first: the program's exit is its consequence, and a fetch failure
	// must reach the scheduler as one for the lost output to be rebuilt.
	if ferr != nil {
		return ferr
	}
	if werr != nil {
		msg := tail.String()
		if msg == "" {
			msg = "(no output on stderr)"
		}
		return fmt.Errorf("pipe: %s: %v: %s", ps.Command, werr, msg)
	}
	return emitErr
}

func isBrokenPipe(err error) bool {
	var pe *os.PathError
	return errors.As(err, &pe) && pe.Err != nil && pe.Err.Error() == "broken pipe"
}
