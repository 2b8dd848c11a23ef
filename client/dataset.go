package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strconv"

	"github.com/baton-sched/baton/ops"
	"github.com/baton-sched/baton/plan"
)

// Dataset is a distributed collection of records described by its
// lineage, as Spark's RDD: transformations (Map, ReduceByKey, Join, ...)
// return new datasets without running anything, and an action (Collect,
// Count, Take, SaveAsTextFile, ...) submits the lineage as a plan, waits
// for the job and returns its answer:
//
//	counts, err := c.TextFile("/data/*.txt", 8).
//		FlatMap("words").Map("pairWithOne").ReduceByKey("sum", 8).
//		CollectMap(ctx)
//
// Functions are named, as in plans: the built-ins (docs/functions.md) or
// functions the executors were built with. A function with arguments
// takes them as an Args:
//
//	d.Map("field", client.Args{"i": 1, "sep": ","})
//
// Datasets are immutable values, safe to share and to derive from many
// times; a mistake (bad arguments) is reported by the action. Every
// action runs one job (take runs a few small ones), released once its
// answer is read.
type Dataset struct {
	c    *Client
	name string
	// nodes is the lineage: this dataset and everything it derives
	// from, by name.
	nodes map[string]*plan.Dataset
	opts  SubmitOptions
	job   string // the plan's name
	err   error
}

// Args are a function's arguments (JSON-encoded into the plan).
type Args map[string]any

// TextFile is the lines of the files matching a glob, split by byte
// range into at least partitions partitions (0: the default, 1), and at
// least one a non-empty file.
func (c *Client) TextFile(glob string, partitions int) *Dataset {
	return c.source(&plan.Dataset{Op: "textFile", Path: glob, Partitions: partitions})
}

// Range is the integers 0..n-1 as decimal text, in partitions
// partitions.
func (c *Client) Range(n int64, partitions int) *Dataset {
	return c.source(&plan.Dataset{Op: "range", N: n, Partitions: partitions})
}

// Parallelize is the given values (value-only records), in partitions
// partitions.
func (c *Client) Parallelize(values []string, partitions int) *Dataset {
	recs := make([]plan.Record, len(values))
	for i, v := range values {
		recs[i] = plan.Record{Value: []byte(v)}
	}
	return c.source(&plan.Dataset{Op: "parallelize", Records: recs, Partitions: partitions})
}

// ParallelizePairs is the given key/value pairs, in partitions
// partitions.
func (c *Client) ParallelizePairs(pairs [][2]string, partitions int) *Dataset {
	recs := make([]plan.Record, len(pairs))
	for i, kv := range pairs {
		recs[i] = plan.Record{Key: []byte(kv[0]), Value: []byte(kv[1]), HasKey: true}
	}
	return c.source(&plan.Dataset{Op: "parallelize", Records: recs, Partitions: partitions})
}

func (c *Client) source(ds *plan.Dataset) *Dataset {
	d := &Dataset{c: c, nodes: map[string]*plan.Dataset{}}
	return d.add(ds)
}

// add returns a new dataset: ds on top of d's lineage (and, for ds with
// several inputs, theirs).
func (d *Dataset) add(ds *plan.Dataset, others ...*Dataset) *Dataset {
	out := &Dataset{c: d.c, nodes: maps.Clone(d.nodes), opts: d.opts, job: d.job, err: d.err}
	for _, o := range others {
		if o.c != d.c {
			out.err = errors.Join(out.err, errors.New("client: datasets of different clients cannot be combined"))
		}
		maps.Copy(out.nodes, o.nodes)
		out.err = errors.Join(out.err, o.err)
	}
	out.name = fmt.Sprintf("%s%d", ds.Op, d.c.datasetSeq.Add(1))
	out.nodes[out.name] = ds
	return out
}

// fn turns a name and optional arguments into a plan function.
func (d *Dataset) fn(name string, args []Args) (*plan.Func, error) {
	f := &plan.Func{Name: name}
	switch len(args) {
	case 0:
	case 1:
		b, err := json.Marshal(args[0])
		if err != nil {
			return nil, fmt.Errorf("client: arguments of %s: %w", name, err)
		}
		f.Args = b
	default:
		return nil, fmt.Errorf("client: %s: one Args at most", name)
	}
	return f, nil
}

func (d *Dataset) withFn(op, name string, args []Args, partitions int) *Dataset {
	f, err := d.fn(name, args)
	out := d.add(&plan.Dataset{Op: op, Input: d.name, Fn: f, Partitions: partitions})
	out.err = errors.Join(out.err, err)
	return out
}

// Map transforms each record with a map function.
func (d *Dataset) Map(fn string, args ...Args) *Dataset { return d.withFn("map", fn, args, 0) }

// MapValues transforms each record's value with a map function, keeping
// its key.
func (d *Dataset) MapValues(fn string, args ...Args) *Dataset {
	return d.withFn("mapValues", fn, args, 0)
}

// FlatMap turns each record into any number with a flatMap function.
func (d *Dataset) FlatMap(fn string, args ...Args) *Dataset { return d.withFn("flatMap", fn, args, 0) }

// Filter keeps the records a filter function keeps.
func (d *Dataset) Filter(fn string, args ...Args) *Dataset { return d.withFn("filter", fn, args, 0) }

// MapPartitions transforms each partition with a partition function.
func (d *Dataset) MapPartitions(fn string, args ...Args) *Dataset {
	return d.withFn("mapPartitions", fn, args, 0)
}

// Union is the records of d and others (their partitions side by side).
func (d *Dataset) Union(others ...*Dataset) *Dataset {
	inputs := []string{d.name}
	for _, o := range others {
		inputs = append(inputs, o.name)
	}
	return d.add(&plan.Dataset{Op: "union", Inputs: inputs}, others...)
}

// Pipe passes each partition's records, one line each, through a program
// (command with args and extra environment env); its output lines are
// the new records. A non-zero exit fails the task.
func (d *Dataset) Pipe(command string, args []string, env map[string]string) *Dataset {
	return d.add(&plan.Dataset{Op: "pipe", Input: d.name, Command: command, Args: args, Env: env})
}

// ReduceByKey combines the values of each key with an aggregator
// function (map-side first), into partitions partitions (0: as many as
// the input).
func (d *Dataset) ReduceByKey(fn string, partitions int, args ...Args) *Dataset {
	return d.withFn("reduceByKey", fn, args, partitions)
}

// GroupByKey gathers the values of each key.
func (d *Dataset) GroupByKey(partitions int) *Dataset {
	return d.add(&plan.Dataset{Op: "groupByKey", Input: d.name, Partitions: partitions})
}

// Distinct keeps one of each record.
func (d *Dataset) Distinct(partitions int) *Dataset {
	return d.add(&plan.Dataset{Op: "distinct", Input: d.name, Partitions: partitions})
}

// Repartition spreads the records over partitions partitions.
func (d *Dataset) Repartition(partitions int) *Dataset {
	return d.add(&plan.Dataset{Op: "repartition", Input: d.name, Partitions: partitions})
}

// SortByKey sorts the records by key, globally: partition i holds keys
// before partition i+1's. A sampling job picks the range bounds.
func (d *Dataset) SortByKey(ascending bool, partitions int) *Dataset {
	return d.add(&plan.Dataset{Op: "sortByKey", Input: d.name, Ascending: &ascending, Partitions: partitions})
}

// Cogroup groups the values of each key in d and others, per input.
func (d *Dataset) Cogroup(partitions int, others ...*Dataset) *Dataset {
	inputs := []string{d.name}
	for _, o := range others {
		inputs = append(inputs, o.name)
	}
	return d.add(&plan.Dataset{Op: "cogroup", Inputs: inputs, Partitions: partitions}, others...)
}

// Join pairs the values of each key in d and other (an inner join).
func (d *Dataset) Join(other *Dataset, partitions int) *Dataset {
	return d.add(&plan.Dataset{Op: "join", Inputs: []string{d.name, other.name}, How: "inner", Partitions: partitions}, other)
}

// LeftOuterJoin is Join keeping d's keys that other lacks.
func (d *Dataset) LeftOuterJoin(other *Dataset, partitions int) *Dataset {
	return d.add(&plan.Dataset{Op: "join", Inputs: []string{d.name, other.name}, How: "left", Partitions: partitions}, other)
}

// Persist marks d to be kept (Spark's persist): the first job that
// computes its partitions leaves them in the executors' block stores, and
// later jobs over d read them there instead of computing them again. A
// partition lost with its executor is computed again from d's lineage.
// Unpersist frees them.
func (d *Dataset) Persist() *Dataset {
	out := *d
	out.nodes = maps.Clone(d.nodes)
	if ds := out.nodes[d.name]; ds != nil {
		cp := *ds
		cp.Persist = true
		out.nodes[d.name] = &cp
	}
	return &out
}

// Unpersist frees d's cached partitions (Spark's unpersist), by the key
// the scheduler gave d when a job of this client persisted it; it is an
// error if none did.
func (d *Dataset) Unpersist(ctx context.Context) error {
	key, ok := d.c.persistedKey(d.name)
	if !ok {
		return fmt.Errorf("client: dataset %s was not persisted by a job of this client", d.name)
	}
	_, err := d.c.Unpersist(ctx, key)
	return err
}

// Named names the job an action runs (for listings and the UI).
func (d *Dataset) Named(name string) *Dataset {
	out := *d
	out.job = name
	return &out
}

// WithOptions sets how an action's jobs are submitted (pool, limits).
func (d *Dataset) WithOptions(opts SubmitOptions) *Dataset {
	out := *d
	out.opts = opts
	return &out
}

// Plan returns the plan an action would submit (a collect of d), for
// inspection or for `batonctl submit`.
func (d *Dataset) Plan() (*plan.Plan, error) {
	return d.plan(plan.Action{Op: "collect", Input: d.name})
}

func (d *Dataset) plan(a plan.Action) (*plan.Plan, error) {
	if d.err != nil {
		return nil, d.err
	}
	return &plan.Plan{Name: d.job, Datasets: maps.Clone(d.nodes), Action: a}, nil
}

func (d *Dataset) run(ctx context.Context, a plan.Action) ([]ops.Record, error) {
	p, err := d.plan(a)
	if err != nil {
		return nil, err
	}
	return d.c.Run(ctx, p, d.opts)
}

// Collect returns every record, in partition order.
func (d *Dataset) Collect(ctx context.Context) ([]ops.Record, error) {
	return d.run(ctx, plan.Action{Op: "collect", Input: d.name})
}

// CollectStrings returns every record's value, in partition order.
func (d *Dataset) CollectStrings(ctx context.Context) ([]string, error) {
	recs, err := d.Collect(ctx)
	return Values(recs), err
}

// CollectMap returns the records as a map from key to value (a keyed
// dataset whose keys are unique, such as ReduceByKey's output).
func (d *Dataset) CollectMap(ctx context.Context) (map[string]string, error) {
	recs, err := d.Collect(ctx)
	if err != nil {
		return nil, err
	}
	m := make(map[string]string, len(recs))
	for _, r := range recs {
		m[string(r.Key)] = string(r.Value)
	}
	return m, nil
}

// Count returns the number of records.
func (d *Dataset) Count(ctx context.Context) (int64, error) {
	recs, err := d.run(ctx, plan.Action{Op: "count", Input: d.name})
	if err != nil {
		return 0, err
	}
	return singleInt(recs)
}

// Take returns the first n records, reading as few partitions as it can.
func (d *Dataset) Take(ctx context.Context, n int) ([]ops.Record, error) {
	return d.run(ctx, plan.Action{Op: "take", Input: d.name, N: int64(n)})
}

// First returns the first record; ok is false when there is none.
func (d *Dataset) First(ctx context.Context) (r ops.Record, ok bool, err error) {
	recs, err := d.run(ctx, plan.Action{Op: "first", Input: d.name})
	if err != nil || len(recs) == 0 {
		return ops.Record{}, false, err
	}
	return recs[0], true, nil
}

// Reduce combines every record's value with an aggregator function; ok
// is false for an empty dataset.
func (d *Dataset) Reduce(ctx context.Context, fn string, args ...Args) (v string, ok bool, err error) {
	f, err := d.fn(fn, args)
	if err != nil {
		return "", false, err
	}
	recs, err := d.run(ctx, plan.Action{Op: "reduce", Input: d.name, Fn: f})
	if err != nil || len(recs) == 0 {
		return "", false, err
	}
	return string(recs[0].Value), true, nil
}

// CountByKey returns the number of records of each key.
func (d *Dataset) CountByKey(ctx context.Context) (map[string]int64, error) {
	recs, err := d.run(ctx, plan.Action{Op: "countByKey", Input: d.name})
	if err != nil {
		return nil, err
	}
	m := make(map[string]int64, len(recs))
	for _, r := range recs {
		n, err := ops.ParseInt(r.Value)
		if err != nil {
			return nil, fmt.Errorf("client: countByKey: %w", err)
		}
		m[string(r.Key)] = n
	}
	return m, nil
}

// SaveAsTextFile writes the records as text files under dir (an absolute
// path on the executors' file system that does not exist or is empty):
// part-NNNNN per partition, a line per record (key TAB value, or the
// value), and _SUCCESS at the end; each partition is written exactly
// once. It returns the number of records written.
func (d *Dataset) SaveAsTextFile(ctx context.Context, dir string) (int64, error) {
	recs, err := d.run(ctx, plan.Action{Op: "saveAsTextFile", Input: d.name, Path: dir})
	if err != nil {
		return 0, err
	}
	return singleInt(recs)
}

// Values returns the records' values as strings.
func Values(recs []ops.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = string(r.Value)
	}
	return out
}

func singleInt(recs []ops.Record) (int64, error) {
	if len(recs) != 1 {
		return 0, fmt.Errorf("client: want one number, got %d records", len(recs))
	}
	n, err := strconv.ParseInt(string(recs[0].Value), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("client: %w", err)
	}
	return n, nil
}
