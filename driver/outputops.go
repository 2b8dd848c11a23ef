package driver

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/dag"
)

// Output operations run on executors, where the data is reachable, never
// on the leader's disk (api.OutputOp): the check that a saveAsTextFile
// output is new, before its job is logged; the job commit (Spark's
// commitJob: the job's temporary files go, then _SUCCESS), before the
// job's last task ends are logged; and the removal of temporary files of
// jobs that failed or were cancelled. Nothing of it goes through the log:
// a job commit interrupted by a leader's death is done again by the next
// leader, which learns the job's last ends from the executors that report
// them again (they were not acknowledged); every operation is idempotent.
// An executor that is lost, or cannot reach the output, hands the
// operation on to another.

// outputWaits are the output operations waiting for their executor's
// answer, by id. Safe from any goroutine.
type outputWaits struct {
	mu   sync.Mutex
	next uint64
	wait map[uint64]outputWait
}

type outputWait struct {
	c  *conn
	ch chan *api.OutputDone
}

func (w *outputWaits) add(c *conn) (uint64, chan *api.OutputDone) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.wait == nil {
		w.wait = map[uint64]outputWait{}
	}
	w.next++
	ch := make(chan *api.OutputDone, 1)
	w.wait[w.next] = outputWait{c, ch}
	return w.next, ch
}

func (w *outputWaits) drop(id uint64) {
	w.mu.Lock()
	delete(w.wait, id)
	w.mu.Unlock()
}

// deliver hands an answer to its waiter; an answer from another session
// than the one asked is ignored.
func (w *outputWaits) deliver(c *conn, d *api.OutputDone) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if ow, ok := w.wait[d.Id]; ok && ow.c == c {
		delete(w.wait, d.Id)
		ow.ch <- d
	}
}

// Output operation timing: how long an executor has to answer (then
// another is asked), how often to look for a connected executor, and how
// long a submission's check waits for one.
const (
	outputAnswerTimeout = 2 * time.Minute
	outputRetry         = 200 * time.Millisecond
	outputCheckWait     = 30 * time.Second
	// outputRounds is how many times every connected executor is asked
	// before a job commit is given up (logged as an error).
	outputRounds = 3
)

// errNoOutputExecutor: no executor could run the operation.
var errNoOutputExecutor = errors.New("driver: no executor is connected to run it")

// outputOp runs an output operation on an executor, prefer's if it is
// still connected, else any: asked again elsewhere when the executor is
// lost, does not answer, or fails for reasons of its own; an error that
// refuses the output itself (code set) is returned as a status error.
// With none connected it waits, up to wait (0: as long as ctx).
func (l *leadership) outputOp(ctx context.Context, kind api.OutputOpKind, path string, job dag.JobID, prefer string, wait time.Duration) error {
	op := &api.OutputOp{Term: l.term, Kind: kind, Path: path, Job: uint64(job)}
	tried := map[string]bool{}
	rounds := 0
	var last error
	var waitUntil time.Time
	if wait > 0 {
		waitUntil = l.d.clock.Now().Add(wait)
	}
	for {
		var c *conn
		var any bool
		if !l.ask(func() { c, any = l.outputConn(prefer, tried) }) {
			return errors.New("driver: stopped leading")
		}
		if c == nil {
			if any {
				// Every connected executor was asked: another round.
				if rounds++; rounds >= outputRounds && last != nil {
					return last
				}
				clear(tried)
			} else if !waitUntil.IsZero() && l.d.clock.Now().After(waitUntil) {
				if last != nil {
					return last
				}
				return errNoOutputExecutor
			}
			t := time.NewTimer(outputRetry)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			}
			continue
		}
		tried[c.id] = true
		id, ch := l.outputs.add(c)
		op.Id = id
		if !c.send(&api.DriverMessage{Msg: &api.DriverMessage_Output{Output: op}}) {
			l.outputs.drop(id)
			continue
		}
		t := time.NewTimer(outputAnswerTimeout)
		select {
		case d := <-ch:
			t.Stop()
			if d.Error == "" {
				return nil
			}
			if d.Code != 0 {
				return status.Error(codes.Code(d.Code), d.Error)
			}
			last = fmt.Errorf("driver: executor %s: %s", c.id, d.Error)
			l.d.log.Warn("driver: output operation failed on an executor; asking another", "op", kind.String(), "path", path, "job", job, "executor", c.id, "err", d.Error)
		case <-c.closed:
			t.Stop()
			l.outputs.drop(id)
		case <-t.C:
			l.outputs.drop(id)
			last = fmt.Errorf("driver: executor %s did not answer within %v", c.id, outputAnswerTimeout)
		case <-ctx.Done():
			t.Stop()
			l.outputs.drop(id)
			return ctx.Err()
		}
	}
}

// outputConn picks a connected, attached executor not yet tried (prefer
// first, then by id); any says whether some executor is connected at all.
// On the loop.
func (l *leadership) outputConn(prefer string, tried map[string]bool) (c *conn, any bool) {
	ok := func(c *conn) bool {
		if c == nil || !c.ready {
			return false
		}
		select {
		case <-c.closed:
			return false
		default:
			return true
		}
	}
	if pc := l.conns[prefer]; ok(pc) && !tried[prefer] {
		return pc, true
	}
	ids := make([]string, 0, len(l.conns))
	for id, c := range l.conns {
		if ok(c) {
			any = true
			if !tried[id] {
				ids = append(ids, id)
			}
		}
	}
	if len(ids) == 0 {
		return nil, any
	}
	sort.Strings(ids)
	return l.conns[ids[0]], true
}

// CheckOutput asks an executor whether a saveAsTextFile output may be
// written (it holds nothing yet, and the executors may reach it), before
// the job is logged. A refusal is an AlreadyExists, InvalidArgument or
// PermissionDenied status; no executor to ask, Unavailable.
func (d *Driver) CheckOutput(ctx context.Context, path string) error {
	l := d.current()
	if l == nil {
		return status.Error(codes.Unavailable, "driver: not leading")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(l.ctx, cancel)
	defer stop()
	err := l.outputOp(ctx, api.OutputOpKind_OUTPUT_OP_CHECK, path, 0, "", outputCheckWait)
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	if l.ctx.Err() != nil {
		return status.Error(codes.Unavailable, "driver: leadership changed while an executor checked the output")
	}
	if ctx.Err() != nil {
		return status.FromContextError(ctx.Err()).Err()
	}
	if errors.Is(err, errNoOutputExecutor) {
		return status.Errorf(codes.Unavailable, "saveAsTextFile: could not check output %s: %v (executors check outputs where they write them: start one)", path, err)
	}
	// Every executor tried and failed (no credentials, storage it cannot
	// reach): retrying the submission would not help until an operator acts.
	return status.Errorf(codes.FailedPrecondition, "saveAsTextFile: no executor could check output %s: %v", path, err)
}
