package ops

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/baton-sched/baton/plan"
)

// Kind says how a function transforms records, and so which operators may
// use it.
type Kind uint8

// Function kinds.
const (
	// KindMap: one record in, one out (map, mapValues; also flatMap).
	KindMap Kind = iota + 1
	// KindFlatMap: one record in, any number out (flatMap).
	KindFlatMap
	// KindFilter: keep a record or not (filter).
	KindFilter
	// KindPartition: a whole partition in, any records out
	// (mapPartitions).
	KindPartition
	// KindAggregator: combines values of one key (reduceByKey).
	KindAggregator
)

var kindNames = map[Kind]string{KindMap: "map", KindFlatMap: "flatMap", KindFilter: "filter", KindPartition: "partition", KindAggregator: "aggregator"}

func (k Kind) String() string { return kindNames[k] }

// opKinds lists which function kinds each operator accepts.
var opKinds = map[string][]Kind{
	"map":           {KindMap},
	"mapValues":     {KindMap},
	"flatMap":       {KindFlatMap, KindMap},
	"filter":        {KindFilter},
	"mapPartitions": {KindPartition},
	"reduceByKey":   {KindAggregator},
	"reduce":        {KindAggregator},
}

// Function signatures. A TaskContext tells a function which task it runs
// in; most ignore it.
type (
	MapFunc     func(tc *TaskContext, r Record) (Record, error)
	FlatMapFunc func(tc *TaskContext, r Record, emit Emit) error
	FilterFunc  func(tc *TaskContext, r Record) (bool, error)
	// PartitionFunc reads its partition's records by calling in (which
	// calls its argument with each record) and emits its output.
	PartitionFunc func(tc *TaskContext, in func(func(Record) error) error, emit Emit) error
)

// Emit passes a record on. The record's bytes may be reused by the caller
// after Emit returns: a receiver that keeps them copies them.
type Emit func(Record) error

// TaskContext is what a function may know about the task running it.
type TaskContext struct {
	// Ctx ends when the task is killed.
	Ctx          context.Context
	Job, Stage   uint64
	StageAttempt int
	Partition    int
	Attempt      int
	Executor     string // the executor's id
	// Exit ends the executor process at once, as a crash would (used by
	// chaos.exit). Nil outside an executor.
	Exit func()
}

// Func is a named function of a registry. New builds an instance from the
// plan's arguments (canonical JSON, or nil) and returns a MapFunc,
// FlatMapFunc, FilterFunc, PartitionFunc or *Aggregator as its Kind says.
// New is called once per task per use, and once at submission to check
// the arguments.
type Func struct {
	Name string
	Kind Kind
	// Doc is one line for the docs (docs/plans.md) and error messages.
	Doc string
	New func(args json.RawMessage) (any, error)
}

// Registry holds named functions. The zero value is empty; NewRegistry
// returns one with the built-in functions.
type Registry struct {
	funcs map[string]*Func
}

// NewRegistry returns a registry holding the built-in functions.
func NewRegistry() *Registry {
	r := &Registry{}
	for _, f := range append(builtins(), library()...) {
		if err := r.Register(f); err != nil {
			panic(err) // a programming error in this package
		}
	}
	return r
}

// Register adds a function. Names are unique.
func (r *Registry) Register(f Func) error {
	if f.Name == "" || f.New == nil || kindNames[f.Kind] == "" {
		return fmt.Errorf("ops: function %q: needs a name, a kind and a constructor", f.Name)
	}
	if r.funcs == nil {
		r.funcs = map[string]*Func{}
	}
	if _, dup := r.funcs[f.Name]; dup {
		return fmt.Errorf("ops: function %q registered twice", f.Name)
	}
	r.funcs[f.Name] = &f
	return nil
}

// Lookup returns a function.
func (r *Registry) Lookup(name string) (*Func, bool) {
	f, ok := r.funcs[name]
	return f, ok
}

// Names returns the registered names, sorted.
func (r *Registry) Names() []string {
	names := make([]string, 0, len(r.funcs))
	for n := range r.funcs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Funcs returns the registered functions, sorted by name.
func (r *Registry) Funcs() []*Func {
	var out []*Func
	for _, n := range r.Names() {
		out = append(out, r.funcs[n])
	}
	return out
}

// CheckFunc implements plan.Functions: the function must exist, fit the
// operator, and accept its arguments. An unknown name is reported with the
// names it could have meant.
func (r *Registry) CheckFunc(op string, fn plan.Func) error {
	f, ok := r.funcs[fn.Name]
	if !ok {
		msg := fmt.Sprintf("unknown function %q", fn.Name)
		if near := r.Suggest(fn.Name); len(near) > 0 {
			msg += fmt.Sprintf(" (did you mean %s?)", strings.Join(near, ", "))
		}
		return fmt.Errorf("%s", msg)
	}
	if kinds, ok := opKinds[op]; ok {
		fits := false
		for _, k := range kinds {
			fits = fits || k == f.Kind
		}
		if !fits {
			var want []string
			for _, k := range kinds {
				want = append(want, k.String())
			}
			return fmt.Errorf("function %q is %s %s function; %s needs %s %s function", fn.Name, article(f.Kind.String()), f.Kind, op, article(want[0]), strings.Join(want, " or "))
		}
	}
	if _, err := f.New(fn.Args); err != nil {
		return fmt.Errorf("function %q: %w", fn.Name, err)
	}
	return nil
}

// Suggest returns registered names close to name (edit distance at most
// two, or sharing a prefix), closest first.
func (r *Registry) Suggest(name string) []string { return Suggest(r.Names(), name) }

// Suggest returns the names close to name (edit distance at most two, or
// sharing a prefix), closest first, at most three.
func Suggest(names []string, name string) []string {
	type cand struct {
		n string
		d int
	}
	var cands []cand
	seen := map[string]bool{}
	for _, n := range names {
		if seen[n] {
			continue
		}
		seen[n] = true
		d := editDistance(strings.ToLower(name), strings.ToLower(n))
		if d <= 2 || (len(name) >= 3 && strings.HasPrefix(strings.ToLower(n), strings.ToLower(name))) {
			cands = append(cands, cand{n, d})
		}
	}
	sort.SliceStable(cands, func(a, b int) bool { return cands[a].d < cands[b].d })
	var out []string
	for i, c := range cands {
		if i == 3 {
			break
		}
		out = append(out, c.n)
	}
	return out
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// args decodes a function's arguments into v (nil arguments leave v as
// it is), rejecting unknown fields.
func args(raw json.RawMessage, v any) error {
	if len(raw) == 0 {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("bad arguments %s: %w", raw, err)
	}
	return nil
}

func noArgs(raw json.RawMessage) error {
	if len(raw) != 0 {
		return fmt.Errorf("takes no arguments, got %s", raw)
	}
	return nil
}

func article(word string) string {
	if word != "" && strings.ContainsRune("aeiouAEIOU", rune(word[0])) {
		return "an"
	}
	return "a"
}
