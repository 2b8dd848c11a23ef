package plan

import (
	"bytes"
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
	// ETag is an s3:// object's entity tag at submission: a ranged read
	// of another version is refused.
	ETag string `json:"etag,omitempty"`
}

// Resolver supplies what compiling needs from outside the plan.
type Resolver interface {
	// TextFileSplits returns the splits of the files matching glob, at
	// least minPartitions of them when the files are large enough.
	TextFileSplits(glob string, minPartitions int) ([]Split, error)
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
	// DefaultPartitions is the partition count of a shuffle that names
	// none and of a textFile without partitions; 0 means the largest
	// input's partition count (Spark's default parallelism without a
	// configured value).
	DefaultPartitions int
	// Limits bound the plan and the job it compiles to (zero fields are
	// not checked). They are checked before any file is listed, and the
	// graph's before Next asks for any sample.
	Limits Limits
}

// Compile validates p and turns it into a Graph: one node per dataset, in
// topological order, with partition counts and dependencies resolved and
// shuffle keys derived from lineage. A plan with a sortByKey needs its
// bounds sampled first: compile it with Start and Next (Compile refuses
// it).
func Compile(p *Plan, opts Options) (*Graph, error) {
	c, err := Start(p, opts)
	if err != nil {
		return nil, err
	}
	s, err := c.Next()
	if err != nil {
		return nil, err
	}
	if s != nil {
		return nil, &Error{Problems: []string{fmt.Sprintf("dataset %q: sortByKey needs its range bounds sampled (compile the plan with plan.Start and Next)", s.Dataset)}}
	}
	return c.Graph()
}

// Compilation compiles one plan step by step. A sortByKey's range bounds
// come from a sample of its input's keys, and a sample is a job of its own
// (as Spark's RangePartitioner runs one): Next stops at each sortByKey
// whose input is compiled and says what to sample; the caller runs the
// sampling job, hands the bounds back with SetBounds, and calls Next
// again. Compiling never runs or waits for a job itself:
//
//	c, err := plan.Start(p, opts)
//	for {
//		s, err := c.Next()
//		if err != nil || s == nil { ... }
//		bounds, err := sample(s) // a job over s.Graph
//		err = c.SetBounds(s, bounds)
//	}
//	g, err := c.Graph()
//
// Start checks the whole plan first (compiling it with empty bounds), so a
// plan with any problem is refused before a sampling job runs.
type Compilation struct {
	p     *Plan
	c     *compiler
	order []string
	pos   int     // the next dataset of order to compile
	want  *Sample // asked by Next, not yet answered
	g     *Graph  // the result, once every dataset compiled
	limit Limits
}

// Sample is a sortByKey whose range bounds must be sampled before its
// plan's compilation goes on.
type Sample struct {
	// Dataset is the sortByKey's name.
	Dataset string
	// Graph computes the sortByKey's input: the nodes compiled so far, its
	// output the input, its action sampleKeys (the caller sets N, the
	// keys to sample per partition).
	Graph *Graph
	// Reducers is the sortByKey's partition count: it needs Reducers-1
	// ascending bounds.
	Reducers int
}

// Start validates p, checks its limits and compiles it once with empty
// range bounds: every problem of the plan is found here. It lists input
// files (twice for a plan that sorts: once here and once in Next).
func Start(p *Plan, opts Options) (*Compilation, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if err := p.CheckLimits(opts.Limits); err != nil {
		return nil, err
	}
	dry := &Compilation{p: p, c: newCompiler(p, opts, true), order: p.topo(), limit: opts.Limits}
	if _, err := dry.Next(); err != nil {
		return nil, err
	}
	if !p.sorts() {
		// Empty bounds are no bounds: the check was the compilation.
		return dry, nil
	}
	return &Compilation{p: p, c: newCompiler(p, opts, false), order: dry.order, limit: opts.Limits}, nil
}

// Next compiles the plan until a sortByKey needs bounds, and returns it;
// it returns nil once the whole plan is compiled (Graph returns it).
func (c *Compilation) Next() (*Sample, error) {
	if c.want != nil {
		return nil, fmt.Errorf("plan: dataset %q: Next before SetBounds", c.want.Dataset)
	}
	if c.g != nil {
		return nil, nil
	}
	var errs []string
	for ; c.pos < len(c.order); c.pos++ {
		err := c.c.compile(c.order[c.pos])
		var need *Sample
		switch {
		case errors.As(err, &need):
			if len(errs) > 0 {
				// Not in a checked plan: found in Start's pass, which
				// samples nothing.
				break
			}
			c.want = need
			return need, nil
		case errors.Is(err, errInputFailed):
			// Reported for the input.
		case err != nil:
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return nil, &Error{Problems: errs}
	}
	g, err := c.c.finish()
	if err != nil {
		return nil, err
	}
	if err := g.CheckLimits(c.limit); err != nil {
		return nil, err
	}
	c.g = g
	return nil, nil
}

// SetBounds gives the sample Next asked for its bounds: at most
// s.Reducers-1 of them, ascending. Fewer (the input has fewer distinct
// keys than reducers) are padded with the last, or with empty ones.
func (c *Compilation) SetBounds(s *Sample, bounds [][]byte) error {
	if c.want == nil || s != c.want {
		return fmt.Errorf("plan: SetBounds for a sample Next did not ask for")
	}
	if len(bounds) > s.Reducers-1 {
		return fmt.Errorf("plan: dataset %q: %d range bounds for %d reducers", s.Dataset, len(bounds), s.Reducers)
	}
	for i := 1; i < len(bounds); i++ {
		if bytes.Compare(bounds[i-1], bounds[i]) > 0 {
			return fmt.Errorf("plan: dataset %q: range bounds are not ascending", s.Dataset)
		}
	}
	c.c.bounds[s.Dataset] = bounds
	c.want = nil
	return nil
}

// Graph returns the compiled graph once Next has returned nil.
func (c *Compilation) Graph() (*Graph, error) {
	if c.g == nil {
		return nil, errors.New("plan: compilation not finished (call Next until it returns no sample)")
	}
	return c.g, nil
}

// Error is only here for Sample to travel through compile's error path.
func (s *Sample) Error() string {
	return fmt.Sprintf("plan: dataset %q: sortByKey needs its range bounds", s.Dataset)
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
	// bounds are sortByKeys' sampled range bounds, by dataset; with dry
	// set, every sortByKey has empty ones (the plan is being checked).
	bounds map[string][][]byte
	dry    bool
}

func newCompiler(p *Plan, opts Options, dry bool) *compiler {
	return &compiler{p: p, opts: opts, index: map[string]int{}, g: &Graph{Name: p.Name}, bounds: map[string][][]byte{}, dry: dry}
}

// finish sets the graph's output and action once every dataset compiled.
func (c *compiler) finish() (*Graph, error) {
	c.g.Output = c.index[c.p.Action.Input]
	a := c.p.Action
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
		node.Partitions = reducers()
		part := Partitioner{Kind: "range", Partitions: node.Partitions, Descending: d.Ascending != nil && !*d.Ascending}
		if node.Partitions > 1 {
			bounds, ok := c.bounds[name]
			switch {
			case c.dry:
				bounds = nil
			case !ok:
				in := inputs[0]
				return &Sample{Dataset: name, Reducers: node.Partitions, Graph: &Graph{
					Name:   c.g.Name + " (sortByKey sample)",
					Nodes:  append([]Node(nil), c.g.Nodes[:in+1]...),
					Output: in,
					Action: GraphAction{Op: "sampleKeys"},
				}}
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
	i := c.add(node)
	c.index[name] = i
	if d.Persist {
		// The key is the lineage's: the same datasets computed the same
		// way in another plan (or job) find the same cached partitions.
		// Persisting does not change the lineage, so shuffles below and
		// above are shared with unpersisted plans.
		c.g.Nodes[i].Persist = "c" + hex.EncodeToString(c.lineage[i][:12])
	}
	return nil
}
