package executor

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"strconv"
	"time"

	"github.com/baton-sched/baton/api"
	"github.com/baton-sched/baton/ops"
	"github.com/baton-sched/baton/plan"
)

// run runs one task in a slot and records its final status.
func (e *Executor) run(ctx context.Context, t *task, l *api.TaskLaunch, g *plan.Graph) {
	// A worker runs it (pool.go). The duration is the task's own, not its
	// wait in the queue: the leader uses it to tell short tasks from long
	// ones.
	var st *api.TaskStatus
	start := time.Now()
	if ctx.Err() != nil {
		st = &api.TaskStatus{Id: l.Id, State: api.TaskState_TASK_STATE_KILLED, Message: "killed before it started"}
	} else {
		st = e.execute(ctx, l, g)
	}
	st.DurationMs = time.Since(start).Milliseconds()
	e.mu.Lock()
	if t.killed && st.State != api.TaskState_TASK_STATE_FINISHED {
		st = &api.TaskStatus{Id: l.Id, State: api.TaskState_TASK_STATE_KILLED, Message: "killed by the leader", DurationMs: st.DurationMs}
	}
	e.finishLocked(st)
	e.mu.Unlock()
	t.cancel()
}

// execute runs the task's code, turning panics into failures.
func (e *Executor) execute(ctx context.Context, l *api.TaskLaunch, g *plan.Graph) (st *api.TaskStatus) {
	id := l.Id
	acc := ops.NewAccumulators()
	cache := &taskCache{e: e, gens: l.CacheGenerations}
	stats := &ops.TaskStats{}
	defer func() {
		if r := recover(); r != nil {
			st = failed(id, fmt.Sprintf("panic: %v\n%s", r, debug.Stack()))
		}
		st = withAccumulators(st, acc)
		st = cache.keep(st)
		if n := stats.SpilledBytes.Load(); n > 0 {
			st.SpilledBytes = n
			e.metrics.spilled.Add(float64(n))
		}
	}()
	task := &ops.Task{
		Graph:      g,
		Node:       int(l.Node),
		Partition:  int(id.Partition),
		ShuffleKey: l.ShuffleKey,
		Inputs:     map[string]ops.ShuffleInput{},
		Reducers:   ops.ReducerRange{Start: int(l.ReduceStart), End: int(l.ReduceEnd)},
		Cache:      cache,
		Stats:      stats,
		Context: ops.TaskContext{
			Job: id.Job, Stage: id.Stage, StageAttempt: int(id.StageAttempt), Partition: int(id.Partition), Attempt: int(id.Attempt), Executor: e.opts.ID,
			Acc: acc,
		},
	}
	if !e.opts.NoExit {
		task.Context.Exit = func() {
			e.log.Warn("chaos.exit: exiting abruptly", "task", id.Task)
			e.opts.Exit(3)
		}
	}
	for i, in := range l.Inputs {
		si := ops.ShuffleInput{ID: in.Shuffle, Key: in.Key, Maps: int(in.Maps)}
		if i < len(l.InputGrants) {
			si.Grant = l.InputGrants[i]
		}
		for _, loc := range in.Locations {
			si.Locations = append(si.Locations, ops.MapLocation{Map: int(loc.Map), Executor: loc.Executor, Addr: loc.Addr})
		}
		task.Inputs[in.Key] = si
	}
	if l.Map {
		sink := &mapSink{store: e.store, shuffle: l.Shuffle, mapIdx: int(id.Partition), stats: stats}
		task.Sink = sink
		out, err := e.runner.RunMap(ctx, task)
		if err != nil {
			sink.abort()
			return failure(id, ctx, err)
		}
		if err := sink.finish(out.Blocks); err != nil {
			return failed(id, fmt.Sprintf("executor: writing map output: %v", err))
		}
		e.metrics.written.Add(float64(out.Bytes))
		return &api.TaskStatus{Id: id, State: api.TaskState_TASK_STATE_FINISHED, MapBytes: out.Bytes, MapSizes: out.Sizes}
	}
	if g.Action.Op == "saveAsTextFile" {
		return e.save(ctx, l, task, g)
	}
	res, err := e.runner.RunResult(ctx, task)
	if err != nil {
		return failure(id, ctx, err)
	}
	size := int64(len(res))
	st = &api.TaskStatus{Id: id, State: api.TaskState_TASK_STATE_FINISHED, ResultSize: size}
	switch {
	case l.MaxResultSize > 0 && size > l.MaxResultSize:
		// Too large to keep: report the size alone; the job is aborted.
		st.Indirect = true
		e.metrics.results.WithLabelValues("too_large").Inc()
	case size > l.MaxDirectResultSize:
		if err := e.store.PutResult(id.Job, id.Task, res); err != nil {
			return failed(id, fmt.Sprintf("executor: writing result: %v", err))
		}
		st.Indirect = true
		e.metrics.results.WithLabelValues("indirect").Inc()
	default:
		st.Result = res
		e.metrics.results.WithLabelValues("direct").Inc()
	}
	return st
}

// withAccumulators puts the attempt's accumulator updates on its status:
// a success's, and an exception's (Spark's ExceptionFailure carries them;
// the scheduler keeps them apart). A misuse of the accumulators fails a
// successful task with what was wrong.
func withAccumulators(st *api.TaskStatus, acc *ops.Accumulators) *api.TaskStatus {
	exception := st.State == api.TaskState_TASK_STATE_FAILED && st.Failure == api.FailureKind_FAILURE_KIND_EXCEPTION
	if st.State != api.TaskState_TASK_STATE_FINISHED && !exception {
		return st
	}
	us, err := acc.Updates()
	if err != nil {
		if exception {
			return st
		}
		return failed(st.Id, "executor: "+err.Error())
	}
	for _, u := range us {
		st.Accumulators = append(st.Accumulators, &api.Accumulator{Name: u.Name, Kind: api.AccumulatorKind(u.Kind), IntValue: u.Int, FloatValue: u.Float})
	}
	return st
}

func failure(id *api.TaskID, ctx context.Context, err error) *api.TaskStatus {
	var ff *ops.FetchFailedError
	switch {
	case errors.As(err, &ff):
		return &api.TaskStatus{Id: id, State: api.TaskState_TASK_STATE_FAILED, Failure: api.FailureKind_FAILURE_KIND_FETCH_FAILED,
			Message: err.Error(), FetchExecutor: ff.Executor, FetchShuffle: ff.Shuffle, FetchMap: int32(ff.Map), FetchReduce: int32(ff.Reduce)}
	case ctx.Err() != nil:
		return &api.TaskStatus{Id: id, State: api.TaskState_TASK_STATE_KILLED, Message: "killed"}
	}
	return failed(id, err.Error())
}

// save runs a saveAsTextFile task with the output commit protocol: the
// partition is written to a file (or object) of this attempt's own under
// the output's _temporary, and made the partition's part-NNNNN (a rename,
// or a server-side copy on S3) only if the leader authorises this attempt
// — the first to ask; the others are denied and drop theirs. A partition
// is thus written once, whole, whatever fails when.
func (e *Executor) save(ctx context.Context, l *api.TaskLaunch, task *ops.Task, g *plan.Graph) *api.TaskStatus {
	id := l.Id
	// A local output is opened confined to the data root that holds it:
	// no link swapped in under it leads the write out.
	out, err := e.opts.Confine.OpenOutput(ctx, g.Action.Path)
	if err != nil {
		return failed(id, "executor: "+err.Error())
	}
	defer out.Close()
	a, err := out.Create(ctx, id.Job, id.Task, int(id.Partition))
	if err != nil {
		return failed(id, "executor: "+err.Error())
	}
	// Whatever happens, this attempt's temporary file goes (the job commit
	// removes the job's temporary files too, but an attempt may end after
	// the job).
	defer a.Discard()
	n, err := e.runner.WriteLines(ctx, task, a)
	if ferr := a.Finish(); err == nil && ferr != nil {
		err = fmt.Errorf("executor: %w", ferr)
	}
	if err != nil {
		return failure(id, ctx, err)
	}
	ok, err := e.askCommit(ctx, id)
	if err != nil {
		return failure(id, ctx, err)
	}
	if !ok {
		return &api.TaskStatus{Id: id, State: api.TaskState_TASK_STATE_FAILED, Failure: api.FailureKind_FAILURE_KIND_COMMIT_DENIED,
			Message: fmt.Sprintf("commit of partition %d denied: another attempt commits it", id.Partition)}
	}
	if id.Attempt == 0 && !e.opts.NoExit && slices.Contains(e.opts.ChaosExitBeforeRename, int(id.Partition)) {
		e.log.Warn("chaos: exiting between the commit's authorisation and its rename", "task", id.Task, "partition", id.Partition)
		e.opts.Exit(3)
	}
	if err := a.Commit(); err != nil {
		return failed(id, "executor: "+err.Error())
	}
	res := ops.AppendRecord(nil, ops.Record{Value: []byte(strconv.FormatInt(n, 10))})
	e.metrics.results.WithLabelValues("direct").Inc()
	return &api.TaskStatus{Id: id, State: api.TaskState_TASK_STATE_FINISHED, Result: res, ResultSize: int64(len(res))}
}
