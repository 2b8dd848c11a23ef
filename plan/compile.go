package plan

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
)

// opKind says where an operator sits in a stage.
type opKind uint8

const (
	sourceOp  opKind = iota + 1 // reads no dataset
	narrowOp                    // pipelined with its input
	shuffleOp                   // reads its input through a shuffle
)

// opSpec is one operator of the plan language: what it needs and how it
// compiles to graph nodes.
type opSpec struct {
	kind opKind
	// inputs is the number of inputs: 0, 1, or -1 for one or more.
	inputs int
	// fn: the function is required (1), optional (0) or not accepted (-1).
	fn    int
	check func(d *Dataset) []string
}

// ops is the operator table. Operators are compiled by compile.
var ops = map[string]opSpec{
	"textFile":      {kind: sourceOp, fn: -1, check: needPath},
	"range":         {kind: sourceOp, fn: -1, check: needN},
	"parallelize":   {kind: sourceOp, fn: -1},
	"map":           {kind: narrowOp, inputs: 1, fn: 1},
	"flatMap":       {kind: narrowOp, inputs: 1, fn: 1},
	"filter":        {kind: narrowOp, inputs: 1, fn: 1},
	"mapPartitions": {kind: narrowOp, inputs: 1, fn: 1},
	"mapValues":     {kind: narrowOp, inputs: 1, fn: 1},
	"union":         {kind: narrowOp, inputs: -1, fn: -1},
	"pipe":          {kind: narrowOp, inputs: 1, fn: -1, check: needCommand},
	"reduceByKey":   {kind: shuffleOp, inputs: 1, fn: 1},
	"groupByKey":    {kind: shuffleOp, inputs: 1, fn: -1},
	"repartition":   {kind: shuffleOp, inputs: 1, fn: -1},
	"distinct":      {kind: shuffleOp, inputs: 1, fn: -1},
	"sortByKey":     {kind: shuffleOp, inputs: 1, fn: -1},
	"cogroup":       {kind: shuffleOp, inputs: -1, fn: -1},
	"join":          {kind: shuffleOp, inputs: -1, fn: -1, check: checkJoin},
}

// actionSpec is one action of the plan language.
type actionSpec struct {
	check func(a *Action) []string
}

var actions = map[string]actionSpec{
	"collect":        {check: noActionFn},
	"count":          {check: noActionFn},
	"countByKey":     {check: noActionFn},
	"first":          {check: noActionFn},
	"take":           {check: func(a *Action) []string { return noActionFnAnd(a, a.N < 1, "n must be >= 1") }},
	"reduce":         {check: func(a *Action) []string { return when(a.Fn == nil || a.Fn.Name == "", "needs fn") }},
	"saveAsTextFile": {check: func(a *Action) []string { return noActionFnAnd(a, a.Path == "", "needs path") }},
}

// OpNames returns the plan language's operators, sorted.
func OpNames() []string { return sortedKeys(ops) }

// ActionNames returns the plan language's actions, sorted.
func ActionNames() []string { return sortedKeys(actions) }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func when(cond bool, msg string) []string {
	if cond {
		return []string{msg}
	}
	return nil
}

func noActionFn(a *Action) []string { return when(a.Fn != nil, "takes no fn") }

func noActionFnAnd(a *Action, cond bool, msg string) []string {
	return append(noActionFn(a), when(cond, msg)...)
}

func needPath(d *Dataset) []string    { return when(d.Path == "", "needs path") }
func needN(d *Dataset) []string       { return when(d.N < 0, "n must be >= 0") }
func needCommand(d *Dataset) []string { return when(d.Command == "", "needs command") }

func checkJoin(d *Dataset) []string {
	var msgs []string
	if len(d.inputs()) != 2 {
		msgs = append(msgs, fmt.Sprintf("needs exactly two inputs, got %d", len(d.inputs())))
	}
	switch d.How {
	case "", "inner", "left":
	default:
		msgs = append(msgs, fmt.Sprintf("how must be inner or left, got %q", d.How))
	}
	return msgs
}

// check applies the generic rules of an operator's spec, then its own.
func (s opSpec) checkAll(d *Dataset) []string {
	var msgs []string
	n := len(d.inputs())
	switch {
	case s.inputs == 0 && n > 0:
		msgs = append(msgs, "a source takes no input")
	case s.inputs == 1 && n != 1:
		msgs = append(msgs, fmt.Sprintf("needs exactly one input, got %d", n))
	case s.inputs == -1 && n < 1:
		msgs = append(msgs, "needs at least one input")
	}
	hasFn := d.Fn != nil && d.Fn.Name != ""
	switch {
	case s.fn == 1 && !hasFn:
		msgs = append(msgs, "needs fn")
	case s.fn == -1 && d.Fn != nil:
		msgs = append(msgs, "takes no fn")
	}
	switch {
	case d.Partitions > MaxPartitions:
		msgs = append(msgs, fmt.Sprintf("partitions %d out of range (at most %d)", d.Partitions, MaxPartitions))
	case d.Partitions < 0 || (d.Partitions == 0 && s.kind == sourceOp && d.Op != "textFile"):
		msgs = append(msgs, fmt.Sprintf("partitions must be >= 1, got %d", d.Partitions))
	case d.Partitions != 0 && s.kind == narrowOp:
		msgs = append(msgs, "takes no partitions (a narrow operator keeps its input's)")
	}
	if s.check != nil {
		msgs = append(msgs, s.check(d)...)
	}
	return msgs
}

// Split is the part of a file one textFile partition reads: the lines
// that start in [Start, Start+Length). Size and ModTime pin the file's
// version, so a changed file is a different source.
type Split struct {
	Path    string `json:"path"`
	Start   int64  `json:"start"`
	Length  int64  `json:"length"`
	Size    int64  `json:"size"`
	ModTime int64  `json:"mtime"`
}

// Resolver supplies what compiling needs from outside the plan.
type Resolver interface {
	// TextFileSplits returns the splits of the files matching glob, at
	// least minPartitions of them when the files are large enough.
	TextFileSplits(glob string, minPartitions int) ([]Split, error)
}

// Sampler picks a range partitioner's bounds for sortByKey, as Spark's
// RangePartitioner does: it samples the keys of the input (node input of
// the partial graph g, whose nodes are those compiled so far) in a job of
// its own and returns reducers-1 ascending bounds that split the sample
// evenly.
type Sampler interface {
	SampleBounds(g *Graph, input, reducers int) ([][]byte, error)
}

// Functions checks a plan's function references at compile time: the
// function must exist, fit the operator that uses it (op is the dataset's
// or the action's op) and accept its arguments. A nil Functions accepts
// every reference.
type Functions interface {
	CheckFunc(op string, fn Func) error
}

// Options configure Compile.
type Options struct {
	// Resolver resolves textFile sources; required when the plan has one.
	Resolver Resolver
	// Functions, when set, is the set of known function names.
	Functions Functions
	// Sampler picks sortByKey's bounds; required when the plan sorts.
	Sampler Sampler
	// DefaultPartitions is the partition count of a shuffle that names
	// none and of a textFile without partitions; 0 means the largest
	// input's partition count (Spark's default parallelism without a
	// configured value).
	DefaultPartitions int
	// Limits bound the plan and the job it compiles to (zero fields are
	// not checked). They are checked before any file is listed or any
	// sampling job runs.
	Limits Limits
}

// Compile validates p and turns it into a Graph: one node per dataset, in
// topological order, with partition counts and dependencies resolved and
// shuffle keys derived from lineage.
//
// A plan with a sortByKey is compiled twice: first without sampling, to
// find every problem, and only if there is none again with the sampling
// jobs, so that a bad plan never runs one.
func Compile(p *Plan, opts Options) (*Graph, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if err := p.CheckLimits(opts.Limits); err != nil {
		return nil, err
	}
	if opts.Sampler != nil && p.sorts() {
		dry := opts
		dry.Sampler = noSampling{}
		g, err := compile(p, dry)
		if err != nil {
			return nil, err
		}
		if err := g.CheckLimits(opts.Limits); err != nil {
			return nil, err
		}
	}
	g, err := compile(p, opts)
	if err != nil {
		return nil, err
	}
	if err := g.CheckLimits(opts.Limits); err != nil {
		return nil, err
	}
	return g, nil
}

func compile(p *Plan, opts Options) (*Graph, error) {
	c := &compiler{p: p, opts: opts, index: map[string]int{}, g: &Graph{Name: p.Name}}
	var errs []string
	for _, name := range p.topo() {
		err := c.compile(name)
		var se *SamplingError
		switch {
		case errors.Is(err, errInputFailed):
			// Reported for the input.
		case errors.As(err, &se):
			// Not a problem of the plan: the sampling job could not run
			// (a leader change, say). Its cause keeps its class.
			return nil, se
		case err != nil:
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return nil, &Error{Problems: errs}
	}
	c.g.Output = c.index[p.Action.Input]
	a := p.Action
	c.g.Action = GraphAction{Op: a.Op, N: a.N, Path: a.Path}
	if a.Fn != nil {
		if err := c.checkFunc("action", a.Op, a.Fn); err != nil {
			return nil, &Error{Problems: []string{err.Error()}}
		}
		c.g.Action.Fn = *a.Fn
	}
	if err := c.g.Validate(); err != nil {
		return nil, err
	}
	return c.g, nil
}

// SamplingError is a sortByKey whose sampling job did not give bounds. It
// is not a problem of the plan (the plan was checked before the sampling
// job ran): its cause (a leadership change, a failed job) is kept, for
// errors.Is and errors.As.
type SamplingError struct {
	Dataset string
	Err     error
}

func (e *SamplingError) Error() string {
	return fmt.Sprintf("plan: dataset %q: sampling for sortByKey: %v", e.Dataset, e.Err)
}

func (e *SamplingError) Unwrap() error { return e.Err }

// errInputFailed: a dataset whose input did not compile is not compiled
// (its input's problem is reported).
var errInputFailed = errors.New("plan: an input failed to compile")

// sorts reports whether the plan has a sortByKey.
func (p *Plan) sorts() bool {
	for _, d := range p.Datasets {
		if d.Op == "sortByKey" {
			return true
		}
	}
	return false
}

// noSampling stands in for the sampler while a plan is checked: bounds
// that are all empty, and no job.
type noSampling struct{}

func (noSampling) SampleBounds(g *Graph, input, reducers int) ([][]byte, error) {
	return make([][]byte, reducers-1), nil
}

// topo returns the dataset names inputs first, ties broken by name.
func (p *Plan) topo() []string {
	var order []string
	done := map[string]bool{}
	var visit func(string)
	visit = func(name string) {
		if done[name] {
			return
		}
		done[name] = true
		for _, in := range p.Datasets[name].inputs() {
			visit(in)
		}
		order = append(order, name)
	}
	for _, name := range p.Names() {
		visit(name)
	}
	return order
}

type compiler struct {
	p       *Plan
	opts    Options
	g       *Graph
	index   map[string]int // dataset name -> node
	lineage [][]byte       // node -> digest of its lineage
}

func (c *compiler) checkFunc(where, op string, f *Func) error {
	if c.opts.Functions == nil {
		return nil
	}
	if err := c.opts.Functions.CheckFunc(op, *f); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	return nil
}

// add appends a node and computes its lineage digest; it returns its index.
func (c *compiler) add(n Node) int {
	h := sha256.New()
	writeStr := func(s string) {
		var l [8]byte
		binary.BigEndian.PutUint64(l[:], uint64(len(s)))
		h.Write(l[:])
		h.Write([]byte(s))
	}
	writeInt := func(v int64) {
		var l [8]byte
		binary.BigEndian.PutUint64(l[:], uint64(v))
		h.Write(l[:])
	}
	writeStr(n.Op)
	writeStr(n.Fn.Name)
	writeStr(string(n.Fn.Args))
	writeStr(string(n.Params))
	writeInt(int64(n.Partitions))
	for _, d := range n.Deps {
		writeInt(int64(d.Kind))
		writeInt(int64(d.InStart))
		writeInt(int64(d.OutStart))
		writeInt(int64(d.Length))
		if d.Kind == Shuffle {
			writeStr(d.Shuffle.Key)
		} else {
			h.Write(c.lineage[d.Parent])
		}
	}
	c.g.Nodes = append(c.g.Nodes, n)
	c.lineage = append(c.lineage, h.Sum(nil))
	return len(c.g.Nodes) - 1
}

// shuffle returns a shuffle dependency on parent with a key derived from
// the parent's lineage, the partitioner and the combiner.
func (c *compiler) shuffle(parent int, part Partitioner, combiner Func) Dep {
	h := sha256.New()
	h.Write(c.lineage[parent])
	fmt.Fprintf(h, "|%s|%d|%t|%d", part.Kind, part.Partitions, part.Descending, len(part.Bounds))
	for _, b := range part.Bounds {
		fmt.Fprintf(h, "|%d:", len(b))
		h.Write(b)
	}
	fmt.Fprintf(h, "|%s|%s", combiner.Name, combiner.Args)
	key := hex.EncodeToString(h.Sum(nil)[:12])
	return Dep{Kind: Shuffle, Parent: parent, Shuffle: &ShuffleDep{Key: key, Partitioner: part, Combiner: combiner}}
}

func params(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("plan: marshal params: %v", err)) // only our own types reach here
	}
	return b
}

func (c *compiler) compile(name string) error {
	d := c.p.Datasets[name]
	var fn Func
	if d.Fn != nil {
		if err := c.checkFunc(fmt.Sprintf("dataset %q", name), d.Op, d.Fn); err != nil {
			return err
		}
		fn = *d.Fn
	}
	in := d.inputs()
	inputs := make([]int, len(in))
	for i, s := range in {
		n, ok := c.index[s]
		if !ok {
			return errInputFailed
		}
		inputs[i] = n
	}
	node := Node{Name: name, Op: d.Op, Fn: fn}
	reducers := func() int {
		if d.Partitions > 0 {
			return d.Partitions
		}
		if c.opts.DefaultPartitions > 0 {
			return c.opts.DefaultPartitions
		}
		most := 1
		for _, i := range inputs {
			most = max(most, c.g.Nodes[i].Partitions)
		}
		return most
	}
	hash := func(n int) Partitioner { return Partitioner{Kind: "hash", Partitions: n} }
	switch d.Op {
	case "textFile":
		if c.opts.Resolver == nil {
			return fmt.Errorf("dataset %q: textFile needs a resolver (files are listed by the scheduler)", name)
		}
		minParts := d.Partitions
		if minParts == 0 {
			minParts = max(c.opts.DefaultPartitions, 1)
		}
		splits, err := c.opts.Resolver.TextFileSplits(d.Path, minParts)
		if err != nil {
			return fmt.Errorf("dataset %q: %w", name, err)
		}
		if len(splits) == 0 {
			return fmt.Errorf("dataset %q: no input files match %q", name, d.Path)
		}
		node.Params = params(struct {
			Path   string  `json:"path"`
			Splits []Split `json:"splits"`
		}{d.Path, splits})
		node.Partitions = len(splits)
	case "range":
		node.Params = params(struct {
			N int64 `json:"n"`
		}{d.N})
		node.Partitions = d.Partitions
	case "parallelize":
		node.Params = params(struct {
			Records []Record `json:"records"`
		}{d.Records})
		node.Partitions = d.Partitions
	case "map", "flatMap", "filter", "mapPartitions", "mapValues", "pipe":
		if d.Op == "pipe" {
			node.Params = params(struct {
				Command string            `json:"command"`
				Args    []string          `json:"args,omitempty"`
				Env     map[string]string `json:"env,omitempty"`
			}{d.Command, d.Args, d.Env})
		}
		node.Partitions = c.g.Nodes[inputs[0]].Partitions
		node.Deps = []Dep{{Kind: OneToOne, Parent: inputs[0]}}
	case "union":
		out := 0
		for _, i := range inputs {
			n := c.g.Nodes[i].Partitions
			node.Deps = append(node.Deps, Dep{Kind: Range, Parent: i, InStart: 0, OutStart: out, Length: n})
			out += n
		}
		node.Partitions = out
	case "reduceByKey":
		// Map-side combine with the same function, then the reduce.
		node.Partitions = reducers()
		node.Deps = []Dep{c.shuffle(inputs[0], hash(node.Partitions), fn)}
	case "groupByKey", "repartition":
		node.Partitions = reducers()
		node.Deps = []Dep{c.shuffle(inputs[0], hash(node.Partitions), Func{})}
	case "distinct":
		node.Partitions = reducers()
		node.Deps = []Dep{c.shuffle(inputs[0], hash(node.Partitions), Func{Name: "first"})}
	case "sortByKey":
		if c.opts.Sampler == nil {
			return fmt.Errorf("dataset %q: sortByKey needs a sampler (the scheduler samples the input in a job of its own)", name)
		}
		node.Partitions = reducers()
		part := Partitioner{Kind: "range", Partitions: node.Partitions, Descending: d.Ascending != nil && !*d.Ascending}
		if node.Partitions > 1 {
			partial := &Graph{Name: c.g.Name, Nodes: c.g.Nodes, Output: inputs[0], Action: GraphAction{Op: "sampleKeys"}}
			bounds, err := c.opts.Sampler.SampleBounds(partial, inputs[0], node.Partitions)
			if err != nil {
				return &SamplingError{Dataset: name, Err: err}
			}
			// Fewer distinct keys than reducers: repeat the last bound
			// (those reducers get nothing).
			for len(bounds) > 0 && len(bounds) < node.Partitions-1 {
				bounds = append(bounds, bounds[len(bounds)-1])
			}
			if len(bounds) == 0 {
				bounds = make([][]byte, node.Partitions-1)
				for i := range bounds {
					bounds[i] = []byte{}
				}
			}
			part.Bounds = bounds
		}
		node.Deps = []Dep{c.shuffle(inputs[0], part, Func{})}
	case "cogroup", "join":
		node.Partitions = reducers()
		for _, i := range inputs {
			node.Deps = append(node.Deps, c.shuffle(i, hash(node.Partitions), Func{}))
		}
		if d.Op == "join" {
			how := d.How
			if how == "" {
				how = "inner"
			}
			node.Params = params(struct {
				How string `json:"how"`
			}{how})
		}
	default:
		return fmt.Errorf("dataset %q: op %q cannot be compiled", name, d.Op)
	}
	c.index[name] = c.add(node)
	return nil
}
