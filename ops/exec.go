package ops

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"

	"github.com/baton-sched/baton/plan"
)

// Task is one task: partition Partition of the stage that computes node
// Node of Graph. A map task (ShuffleKey set) writes that shuffle's blocks;
// a result task evaluates the graph's action on its partition.
type Task struct {
	Graph     *plan.Graph
	Node      int
	Partition int
	// ShuffleKey is the shuffle a map task writes; empty for a result task.
	ShuffleKey string
	// Inputs are the shuffles the task reads, by key, with their map
	// output locations.
	Inputs map[string]ShuffleInput
	// Reducers, when End > 0, makes the task one of a coalesced stage
	// (the scheduler's adaptive coalescing): the datasets of its stage
	// that read shuffles read reducer partitions [Start, End), in order,
	// instead of the partition Partition.
	Reducers ReducerRange
	// Cache, when set, is the executor's store of persisted datasets'
	// partitions: a persisted dataset's partition is read from it when it
	// is kept there, and kept when the task computes it in full.
	Cache   Cache
	Context TaskContext
	// Stats, when set, receives what the task measured (spilled bytes).
	Stats *TaskStats
	// Sink, when set, takes a map task's output a segment at a time once
	// it passes the task's memory budget; the blocks RunMap returns are
	// then its last segment.
	Sink MapSink
}

// MapSink receives a map task's output in segments: a block (possibly
// empty) per reducer each time; a reducer's block is its segments in
// order. The blocks are reused after Segment returns.
type MapSink interface {
	Segment(blocks [][]byte) error
}

// Cache is a task's access to its executor's kept partitions of persisted
// datasets (plan.Node.Persist).
type Cache interface {
	// Get returns a kept partition's encoded records, or false.
	Get(key string, part int) ([]byte, bool)
	// Keep is given a partition the task computed in full, encoded; the
	// executor keeps it if the task succeeds.
	Keep(key string, part int, block []byte)
	// Unreadable is told of a partition Get returned that does not
	// decode: the task computes it instead.
	Unreadable(key string, part int, err error)
}

// MaxCachedPartition bounds the encoded bytes of a persisted dataset's
// partition a task keeps: a larger partition is not kept, and jobs
// compute it again (Spark's MEMORY_ONLY level drops what does not fit).
const MaxCachedPartition = 128 << 20

// ReducerRange is a range of reducer partitions [Start, End); End 0 is
// no range.
type ReducerRange struct{ Start, End int }

// ShuffleInput is a shuffle a task reads.
type ShuffleInput struct {
	ID        uint64
	Key       string
	Maps      int
	Locations []MapLocation
	// Grant is the leader's permission to read the shuffle's blocks from
	// other executors (nil when ACLs are off).
	Grant []byte
}

// MapLocation is where one map output lives.
type MapLocation struct {
	Map      int
	Executor string
	Addr     string
}

// Fetcher reads shuffle blocks for a reducer. It calls fn with each map
// output's block for reducer reduce, in ascending map order. A block it
// cannot read (its executor is gone, it is missing or corrupt) makes it
// return a *FetchFailedError.
type Fetcher interface {
	Fetch(ctx context.Context, in ShuffleInput, reduce int, fn func(mapIdx int, block []byte) error) error
}

// FetchFailedError is a shuffle block that could not be read: the task
// ends with Spark's FetchFailed, which makes the scheduler recompute the
// map output. Map is -1 when the block's location was unknown.
type FetchFailedError struct {
	Executor string
	Shuffle  uint64
	Map      int
	Reduce   int
	Err      error
}

func (e *FetchFailedError) Error() string {
	return fmt.Sprintf("fetch failed: shuffle %d map %d reduce %d from executor %q: %v", e.Shuffle, e.Map, e.Reduce, e.Executor, e.Err)
}

func (e *FetchFailedError) Unwrap() error { return e.Err }

// MapOutput is what a map task produced: one block of records per reducer.
type MapOutput struct {
	Blocks [][]byte
	Bytes  uint64
	// Sizes are the blocks' sizes compressed to a byte each
	// (blocksize.Compress), or nil for more than blocksize.MaxSizedReducers.
	Sizes []byte
}

// Runner runs tasks with the functions of a registry, reading shuffles
// through a Fetcher.
type Runner struct {
	Registry *Registry
	Fetcher  Fetcher
	// Confine bounds the programs and paths tasks may use (nil: none).
	Confine *Confinement
	// TaskMemory is each task's memory budget in bytes: what an operator
	// that gathers a partition (a map task's output, a reduce-side
	// aggregation, group, join, distinct or sort) keeps in memory before
	// it spills to SpillDir (spill.go). 0: no budget, nothing spills.
	TaskMemory int64
	// SpillDir is where tasks write their spill runs (each task its own
	// directory, removed when it ends).
	SpillDir string

	// params caches decoded operator parameters by graph node: a graph
	// is shared by every task of its stages, and short tasks should not
	// each decode the same JSON.
	params sync.Map // paramKey -> any
}

// ForgetParams drops the cached parameters (when the caller drops the
// graphs they belong to).
func (r *Runner) ForgetParams() { r.params.Clear() }

type paramKey struct {
	g    *plan.Graph
	node int
}

// nodeParams decodes node's parameters into a new T, once per graph node.
func nodeParams[T any](r *Runner, g *plan.Graph, node int) (*T, error) {
	k := paramKey{g, node}
	if v, ok := r.params.Load(k); ok {
		return v.(*T), nil
	}
	v := new(T)
	if err := params(g.Nodes[node].Params, v); err != nil {
		return nil, err
	}
	r.params.Store(k, v)
	return v, nil
}

// RunMap runs a map task.
func (r *Runner) RunMap(ctx context.Context, t *Task) (*MapOutput, error) {
	x, err := r.newExec(ctx, t)
	if err != nil {
		return nil, err
	}
	defer x.spill.close()
	return x.runMap()
}

// RunResult runs a result task and returns its serialized result.
func (r *Runner) RunResult(ctx context.Context, t *Task) ([]byte, error) {
	x, err := r.newExec(ctx, t)
	if err != nil {
		return nil, err
	}
	defer x.spill.close()
	return x.runResult()
}

// exec is one task's evaluation.
type exec struct {
	ctx context.Context
	r   *Runner
	t   *Task
	g   *plan.Graph
	tc  *TaskContext
	fns map[int]any // node -> function instance
	// spill holds the task's spill runs (removed when the task ends).
	spill *spill
}

func (r *Runner) newExec(ctx context.Context, t *Task) (*exec, error) {
	if t.Graph == nil || t.Node < 0 || t.Node >= len(t.Graph.Nodes) {
		return nil, errors.New("ops: task without a valid graph node")
	}
	if t.Partition < 0 || t.Partition >= t.Graph.Nodes[t.Node].Partitions {
		return nil, fmt.Errorf("ops: partition %d out of range for %d partitions", t.Partition, t.Graph.Nodes[t.Node].Partitions)
	}
	if r := t.Reducers; r.End > 0 {
		if err := checkReducers(t.Graph, t.Node, r); err != nil {
			return nil, err
		}
	}
	tc := t.Context
	tc.Partition = t.Partition
	tc.Ctx = ctx
	x := &exec{ctx: ctx, r: r, t: t, g: t.Graph, tc: &tc, fns: map[int]any{}, spill: &spill{root: r.SpillDir, stats: t.Stats}}
	// Instantiate the functions of the nodes this task computes.
	for _, n := range t.Graph.NarrowClosure(t.Node) {
		node := &t.Graph.Nodes[n]
		if node.Fn.Name == "" || node.Op == "reduceByKey" {
			continue
		}
		inst, err := r.instantiate(node.Fn)
		if err != nil {
			return nil, fmt.Errorf("ops: dataset %q: %w", node.Name, err)
		}
		x.fns[n] = inst
	}
	return x, nil
}

func (r *Runner) instantiate(fn plan.Func) (any, error) {
	f, ok := r.Registry.Lookup(fn.Name)
	if !ok {
		msg := fmt.Sprintf("this executor has no function %q", fn.Name)
		if near := r.Registry.Suggest(fn.Name); len(near) > 0 {
			msg += fmt.Sprintf(" (did you mean %v?)", near)
		}
		return nil, errors.New(msg)
	}
	return f.New(fn.Args)
}

func (r *Runner) aggregator(fn plan.Func) (*Aggregator, error) {
	inst, err := r.instantiate(fn)
	if err != nil {
		return nil, err
	}
	agg, ok := inst.(*Aggregator)
	if !ok {
		return nil, fmt.Errorf("function %q is not an aggregator", fn.Name)
	}
	return agg, nil
}

// compute pushes the records of partition p of node to emit: for a
// persisted dataset, from the executor's kept partition when there is
// one; otherwise computed, and kept when computed in full.
func (x *exec) compute(node, p int, emit Emit) error {
	key := x.g.Nodes[node].Persist
	if key == "" || x.t.Cache == nil {
		return x.computeOp(node, p, emit)
	}
	if block, ok := x.t.Cache.Get(key, p); ok {
		// Decoded whole before anything is emitted: a block that does
		// not decode is computed instead, never half read.
		err := DecodeRecords(block, func(Record) error { return nil })
		if err == nil {
			return DecodeRecords(block, emit)
		}
		x.t.Cache.Unreadable(key, p, err)
	}
	buf := []byte{}
	err := x.computeOp(node, p, func(r Record) error {
		if buf != nil {
			if buf = AppendRecord(buf, r); len(buf) > MaxCachedPartition {
				buf = nil // too large to keep
			}
		}
		return emit(r)
	})
	if err == nil && buf != nil {
		x.t.Cache.Keep(key, p, buf)
	}
	return err
}

// computeOp computes the records of partition p of node with its
// operator.
func (x *exec) computeOp(node, p int, emit Emit) error {
	if err := x.ctx.Err(); err != nil {
		return err
	}
	n := &x.g.Nodes[node]
	switch n.Op {
	case "textFile":
		ps, err := nodeParams[textParams](x.r, x.g, node)
		if err != nil {
			return err
		}
		return readTextSplit(x.ctx, x.r.Confine, ps, p, emit)
	case "range":
		ps, err := nodeParams[rangeParams](x.r, x.g, node)
		if err != nil {
			return err
		}
		return readRange(x.ctx, ps, p, n.Partitions, emit)
	case "parallelize":
		ps, err := nodeParams[parallelizeParams](x.r, x.g, node)
		if err != nil {
			return err
		}
		return readParallelize(ps, p, n.Partitions, emit)
	case "map", "mapValues":
		fn, ok := x.fns[node].(MapFunc)
		if !ok {
			return fmt.Errorf("ops: dataset %q: function %q is not a map function", n.Name, n.Fn.Name)
		}
		values := n.Op == "mapValues"
		return x.compute(n.Deps[0].Parent, p, func(r Record) error {
			in := r
			if values {
				in = Record{Value: r.Value}
			}
			out, err := fn(x.tc, in)
			if err != nil {
				return err
			}
			if values {
				out = Record{Key: r.Key, HasKey: r.HasKey, Value: out.Value}
			}
			return emit(out)
		})
	case "flatMap":
		switch fn := x.fns[node].(type) {
		case FlatMapFunc:
			return x.compute(n.Deps[0].Parent, p, func(r Record) error { return fn(x.tc, r, emit) })
		case MapFunc:
			return x.compute(n.Deps[0].Parent, p, func(r Record) error {
				out, err := fn(x.tc, r)
				if err != nil {
					return err
				}
				return emit(out)
			})
		}
		return fmt.Errorf("ops: dataset %q: function %q is not a flatMap function", n.Name, n.Fn.Name)
	case "filter":
		fn, ok := x.fns[node].(FilterFunc)
		if !ok {
			return fmt.Errorf("ops: dataset %q: function %q is not a filter", n.Name, n.Fn.Name)
		}
		return x.compute(n.Deps[0].Parent, p, func(r Record) error {
			keep, err := fn(x.tc, r)
			if err != nil || !keep {
				return err
			}
			return emit(r)
		})
	case "mapPartitions":
		fn, ok := x.fns[node].(PartitionFunc)
		if !ok {
			return fmt.Errorf("ops: dataset %q: function %q is not a partition function", n.Name, n.Fn.Name)
		}
		tc := *x.tc
		tc.Partition = p
		return fn(&tc, func(f func(Record) error) error { return x.compute(n.Deps[0].Parent, p, f) }, emit)
	case "pipe":
		ps, err := nodeParams[pipeParams](x.r, x.g, node)
		if err != nil {
			return err
		}
		return runPipe(x.ctx, x.r.Confine, ps, func(f func(Record) error) error { return x.compute(n.Deps[0].Parent, p, f) }, emit)
	case "union":
		for _, d := range n.Deps {
			if p >= d.OutStart && p < d.OutStart+d.Length {
				return x.compute(d.Parent, p-d.OutStart+d.InStart, emit)
			}
		}
		return fmt.Errorf("ops: dataset %q: no input covers partition %d", n.Name, p)
	case "reduceByKey", "groupByKey", "repartition", "distinct", "cogroup", "join", "sortByKey":
		if r := x.t.Reducers; r.End > 0 {
			// A coalesced task: its reducers, in order (keys of a hash
			// shuffle are apart by reducer; a range shuffle's reducers
			// are in key order, so the output stays sorted).
			for reduce := r.Start; reduce < r.End; reduce++ {
				if err := x.readShuffle(node, reduce, emit); err != nil {
					return err
				}
			}
			return nil
		}
		return x.readShuffle(node, p, emit)
	}
	return fmt.Errorf("ops: dataset %q: operator %q is not supported by this executor", n.Name, n.Op)
}

// checkReducers refuses a reducer range a coalesced task cannot have:
// out of the node's partitions, or a stage that does not read its
// shuffles one partition to one (a source, a union).
func checkReducers(g *plan.Graph, node int, r ReducerRange) error {
	n := g.Nodes[node].Partitions
	if r.Start < 0 || r.Start >= r.End || r.End > n {
		return fmt.Errorf("ops: reducer range [%d, %d) out of the %d partitions of dataset %q", r.Start, r.End, n, g.Nodes[node].Name)
	}
	for _, i := range g.NarrowClosure(node) {
		deps := g.Nodes[i].Deps
		if len(deps) == 0 {
			return fmt.Errorf("ops: dataset %q reads no shuffle: its stage cannot be coalesced", g.Nodes[i].Name)
		}
		for _, d := range deps {
			if d.Kind == plan.Range {
				return fmt.Errorf("ops: dataset %q reads ranges of its inputs: its stage cannot be coalesced", g.Nodes[i].Name)
			}
		}
	}
	return nil
}

// runResult evaluates the action on the task's partition.
func (x *exec) runResult() ([]byte, error) {
	a := x.g.Action
	switch a.Op {
	case "collect", "take", "first":
		limit := int64(-1)
		switch a.Op {
		case "take":
			limit = a.N
		case "first":
			limit = 1
		}
		var out []byte
		var n int64
		errEnough := errors.New("enough")
		err := x.compute(x.t.Node, x.t.Partition, func(r Record) error {
			if limit >= 0 && n >= limit {
				return errEnough
			}
			out = AppendRecord(out, r)
			n++
			return nil
		})
		if err != nil && !errors.Is(err, errEnough) {
			return nil, err
		}
		if out == nil {
			out = []byte{}
		}
		return out, nil
	case "count":
		var n int64
		if err := x.compute(x.t.Node, x.t.Partition, func(Record) error { n++; return nil }); err != nil {
			return nil, err
		}
		return AppendRecord(nil, Record{Value: fmt.Appendf(nil, "%d", n)}), nil
	case "sampleKeys":
		// For sortByKey's bounds (Spark's RangePartitioner.sketch): the
		// partition's record count, then a reservoir sample of up to N of
		// its keys. The sample is repeatable: seeded by the partition.
		n := int(a.N)
		if n <= 0 {
			n = 20
		}
		rng := rand.New(rand.NewPCG(uint64(x.t.Partition), 0x5eed))
		var sample [][]byte
		var count int64
		err := x.compute(x.t.Node, x.t.Partition, func(r Record) error {
			count++
			if len(sample) < n {
				sample = append(sample, append([]byte(nil), r.Key...))
			} else if j := rng.Int64N(count); j < int64(n) {
				sample[j] = append(sample[j][:0], r.Key...)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		out := AppendRecord(nil, Record{Value: fmt.Appendf(nil, "%d", count)})
		for _, k := range sample {
			out = AppendRecord(out, Record{Key: k, HasKey: true})
		}
		return out, nil
	case "countByKey":
		counts := map[string]int64{}
		var order []string
		err := x.compute(x.t.Node, x.t.Partition, func(r Record) error {
			if _, ok := counts[string(r.Key)]; !ok {
				order = append(order, string(r.Key))
			}
			counts[string(r.Key)]++
			return nil
		})
		if err != nil {
			return nil, err
		}
		return appendSortedInts(nil, counts), nil
	case "reduce":
		agg, err := x.r.aggregator(a.Fn)
		if err != nil {
			return nil, err
		}
		var acc []byte
		var iacc int64
		have := false
		err = x.compute(x.t.Node, x.t.Partition, func(r Record) error {
			if agg.IsInt() {
				v, err := agg.IntCreate(r.Value)
				if err != nil {
					return err
				}
				if have {
					v = agg.IntMerge(iacc, v)
				}
				iacc, have = v, true
				return nil
			}
			v, err := agg.BytesCreate(r.Value)
			if err != nil {
				return err
			}
			if have {
				if v, err = agg.BytesMerge(acc, v); err != nil {
					return err
				}
			}
			acc, have = append(acc[:0], v...), true
			return nil
		})
		if err != nil || !have {
			return []byte{}, err
		}
		if agg.IsInt() {
			acc = fmt.Appendf(nil, "%d", iacc)
		}
		return AppendRecord(nil, Record{Value: acc}), nil
	}
	return nil, fmt.Errorf("ops: action %q is not supported by this executor", a.Op)
}

// params decodes a node's parameters.
func params(raw json.RawMessage, v any) error {
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("ops: bad operator parameters: %w", err)
	}
	return nil
}

// WriteText computes a result task's partition into a text file name
// under d (a line a record: key<TAB>value, or the value alone), synced,
// and returns the number of records written. Its directory is created.
func (r *Runner) WriteText(ctx context.Context, t *Task, d *Dir, name string) (int64, error) {
	f, err := d.Create(name)
	if err != nil {
		return 0, fmt.Errorf("ops: saveAsTextFile: %w", err)
	}
	n, err := r.WriteLines(ctx, t, f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		d.Remove(name)
		return 0, err
	}
	return n, nil
}

// WriteLines computes a result task's partition as text lines to w (key,
// tab, value, or the value alone) and returns how many it wrote.
func (r *Runner) WriteLines(ctx context.Context, t *Task, out io.Writer) (int64, error) {
	x, err := r.newExec(ctx, t)
	if err != nil {
		return 0, err
	}
	defer x.spill.close()
	w := bufio.NewWriterSize(out, 256<<10)
	var n int64
	err = x.compute(t.Node, t.Partition, func(rec Record) error {
		n++
		if rec.HasKey {
			w.Write(rec.Key)
			w.WriteByte('\t')
		}
		w.Write(rec.Value)
		return w.WriteByte('\n')
	})
	if err == nil {
		err = w.Flush()
	}
	return n, err
}
