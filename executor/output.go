package executor

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/ops"
)

// Output operations: the leader asks an executor, where the data is
// reachable, to check a saveAsTextFile output before its job is logged
// and to commit (or abort) the job's output; it never touches the data
// itself. Each runs in a goroutine of its own (at most maxOutputOps at
// once; more wait) and its answer goes back in the session it came in.
// An answer lost with its session is asked again, elsewhere perhaps:
// every operation is idempotent.

// maxOutputOps bounds the output operations running at once.
const maxOutputOps = 16

// outputOpTimeout bounds one operation (a job commit lists and deletes
// the job's temporary objects).
const outputOpTimeout = 5 * time.Minute

// output starts an output operation, unless a deposed leader asks.
func (e *Executor) output(ctx context.Context, op *api.OutputOp) {
	e.mu.Lock()
	if op.Term < e.highestTerm {
		e.stats.fenced++
		e.metrics.fenced.Inc()
		e.mu.Unlock()
		e.log.Warn("refused an output operation from a deposed leader", "op", op.Kind.String(), "term", op.Term, "highest", e.highestTerm)
		return
	}
	e.raiseTerm(op.Term)
	e.mu.Unlock()
	go func() {
		select {
		case e.outputSem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		defer func() { <-e.outputSem }()
		octx, cancel := context.WithTimeout(ctx, outputOpTimeout)
		defer cancel()
		err := e.runOutput(octx, op)
		d := &api.OutputDone{Id: op.Id}
		if err != nil {
			d.Error = err.Error()
			d.Code = uint32(outputCode(err))
			e.log.Info("output operation failed", "op", op.Kind.String(), "path", op.Path, "job", op.Job, "err", err)
		} else {
			e.log.Info("output operation done", "op", op.Kind.String(), "path", op.Path, "job", op.Job)
		}
		e.mu.Lock()
		e.outputDone = append(e.outputDone, d)
		e.mu.Unlock()
		e.wake()
	}()
}

// runOutput runs one output operation.
func (e *Executor) runOutput(ctx context.Context, op *api.OutputOp) error {
	out, err := e.opts.Confine.OpenOutput(ctx, op.Path)
	if err != nil {
		return err
	}
	defer out.Close()
	switch op.Kind {
	case api.OutputOpKind_OUTPUT_OP_CHECK:
		return out.Check(ctx)
	case api.OutputOpKind_OUTPUT_OP_COMMIT:
		if d := e.opts.ChaosJobCommitDelay; d > 0 {
			e.log.Warn("chaos: delaying a job commit", "job", op.Job, "delay", d)
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			}
		}
		return out.CommitJob(ctx, op.Job)
	case api.OutputOpKind_OUTPUT_OP_ABORT:
		return out.AbortJob(ctx, op.Job)
	}
	return errors.New("executor: unknown output operation " + op.Kind.String())
}

// outputCode classes an output operation's error: a refusal of the
// output itself (the leader gives it to the client), or 0, the
// executor's own trouble (the leader asks another).
func outputCode(err error) codes.Code {
	switch {
	case errors.Is(err, ops.ErrOutputExists):
		return codes.AlreadyExists
	case errors.Is(err, ops.ErrOutputInvalid):
		return codes.InvalidArgument
	case errors.Is(err, ops.ErrConfined):
		return codes.PermissionDenied
	}
	return codes.OK
}
