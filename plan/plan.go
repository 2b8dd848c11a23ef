package plan

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// Plan is a job as a user writes it: named datasets, each made by an
// operator from its inputs, and one action on one of them. It is the JSON
// contract of `batonctl submit -f plan.json`:
//
//	{
//	  "name": "wordcount",
//	  "datasets": {
//	    "lines":  {"op": "textFile", "path": "/data/*.txt", "partitions": 8},
//	    "words":  {"op": "flatMap", "input": "lines", "fn": "words"},
//	    "pairs":  {"op": "map", "input": "words", "fn": "pairWithOne"},
//	    "counts": {"op": "reduceByKey", "input": "pairs", "fn": "sum", "partitions": 4}
//	  },
//	  "action": {"op": "collect", "input": "counts"}
//	}
//
// The contract is extended only compatibly: new fields are optional and old
// fields keep their meaning.
type Plan struct {
	Name     string              `json:"name,omitempty"`
	Datasets map[string]*Dataset `json:"datasets"`
	Action   Action              `json:"action"`
}

// Dataset is one node of a plan: an operator, its inputs and its parameters.
// Which fields an operator reads is listed in the operator table (see Ops).
type Dataset struct {
	Op         string   `json:"op"`
	Input      string   `json:"input,omitempty"`
	Inputs     []string `json:"inputs,omitempty"`
	Fn         *Func    `json:"fn,omitempty"`
	Partitions int      `json:"partitions,omitempty"`

	Path      string            `json:"path,omitempty"`      // textFile: a glob
	N         int64             `json:"n,omitempty"`         // range: the count
	Records   []Record          `json:"records,omitempty"`   // parallelize
	Ascending *bool             `json:"ascending,omitempty"` // sortByKey
	How       string            `json:"how,omitempty"`       // join: inner or left
	Command   string            `json:"command,omitempty"`   // pipe
	Args      []string          `json:"args,omitempty"`      // pipe
	Env       map[string]string `json:"env,omitempty"`       // pipe

	// Persist keeps the dataset's computed partitions in the executors'
	// block stores (Spark's persist): later jobs over the same lineage
	// read them where they are instead of computing them again, until
	// the dataset is unpersisted.
	Persist bool `json:"persist,omitempty"`
}

// Action is what a job does with its final dataset.
type Action struct {
	Op    string `json:"op"`
	Input string `json:"input"`
	Fn    *Func  `json:"fn,omitempty"`   // reduce
	N     int64  `json:"n,omitempty"`    // take
	Path  string `json:"path,omitempty"` // saveAsTextFile
}

// Func names a function of the executors' registry, with arguments. In JSON
// it is either a bare name ("words") or an object
// ({"name": "field", "args": {"i": 1, "sep": ","}}).
type Func struct {
	Name string
	// Args is the arguments object in canonical JSON (keys sorted, no
	// insignificant space), or nil for none.
	Args json.RawMessage
}

// UnmarshalJSON accepts a string or a {"name", "args"} object.
func (f *Func) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var name string
		if err := json.Unmarshal(b, &name); err != nil {
			return err
		}
		*f = Func{Name: name}
		return nil
	}
	var obj struct {
		Name string          `json:"name"`
		Args json.RawMessage `json:"args"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&obj); err != nil {
		return fmt.Errorf("fn must be a name or {\"name\": ..., \"args\": {...}}: %w", err)
	}
	args, err := canonicalArgs(obj.Args)
	if err != nil {
		return err
	}
	*f = Func{Name: obj.Name, Args: args}
	return nil
}

// MarshalJSON writes a bare name when there are no arguments.
func (f Func) MarshalJSON() ([]byte, error) {
	if len(f.Args) == 0 {
		return json.Marshal(f.Name)
	}
	return json.Marshal(struct {
		Name string          `json:"name"`
		Args json.RawMessage `json:"args"`
	}{f.Name, f.Args})
}

func (f *Func) String() string {
	if f == nil {
		return ""
	}
	if len(f.Args) == 0 {
		return f.Name
	}
	return f.Name + string(f.Args)
}

// canonicalArgs re-encodes an arguments object with sorted keys and exact
// numbers, so that equal arguments give equal bytes (shuffle keys depend on
// it).
func canonicalArgs(raw json.RawMessage) (json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v map[string]any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("fn args must be a JSON object: %w", err)
	}
	if len(v) == 0 {
		return nil, nil
	}
	out, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Record is a key/value pair of byte strings; a record without a key is a
// value-only record. In JSON a record is ["key", "value"] or "value".
type Record struct {
	Key    []byte
	Value  []byte
	HasKey bool
}

// UnmarshalJSON accepts "value" or ["key", "value"]. Numbers are accepted
// and kept as their decimal text.
func (r *Record) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '[' {
		var kv []json.RawMessage
		if err := json.Unmarshal(b, &kv); err != nil {
			return err
		}
		if len(kv) != 2 {
			return fmt.Errorf("a record is \"value\" or [\"key\", \"value\"], got %d elements", len(kv))
		}
		k, err := scalarText(kv[0])
		if err != nil {
			return err
		}
		v, err := scalarText(kv[1])
		if err != nil {
			return err
		}
		*r = Record{Key: k, Value: v, HasKey: true}
		return nil
	}
	v, err := scalarText(b)
	if err != nil {
		return err
	}
	*r = Record{Value: v}
	return nil
}

// MarshalJSON writes ["key", "value"] or "value".
func (r Record) MarshalJSON() ([]byte, error) {
	if r.HasKey {
		return json.Marshal([2]string{string(r.Key), string(r.Value)})
	}
	return json.Marshal(string(r.Value))
}

func scalarText(b json.RawMessage) ([]byte, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil, fmt.Errorf("empty record field")
	}
	switch b[0] {
	case '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return nil, err
		}
		return []byte(s), nil
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		var n json.Number
		if err := json.Unmarshal(b, &n); err != nil {
			return nil, err
		}
		return []byte(n.String()), nil
	}
	return nil, fmt.Errorf("a record field must be a string or a number, got %s", b)
}

// Parse decodes a plan from JSON, rejecting unknown fields, and validates
// its shape (see Validate).
func Parse(data []byte) (*Plan, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var p Plan
	if err := dec.Decode(&p); err != nil {
		return nil, decodeError(data, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("plan: trailing data after the plan object")
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// Names returns the plan's dataset names, sorted.
func (p *Plan) Names() []string {
	names := make([]string, 0, len(p.Datasets))
	for name := range p.Datasets {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// inputs returns the datasets a dataset reads, in order.
func (d *Dataset) inputs() []string {
	if d.Input != "" {
		return append([]string{d.Input}, d.Inputs...)
	}
	return d.Inputs
}

// Validate checks the plan's shape: known operators with the inputs and
// parameters they need, references to existing datasets, no cycle,
// partitions >= 1 where given, and an action on an existing dataset. It
// reports every problem it finds, joined with "; ".
func (p *Plan) Validate() error {
	var errs []string
	fail := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if len(p.Datasets) == 0 {
		fail("no datasets")
	}
	for _, name := range p.Names() {
		d := p.Datasets[name]
		if d == nil {
			fail("dataset %q: empty", name)
			continue
		}
		if name == "" {
			fail("a dataset has an empty name")
		}
		spec, ok := ops[d.Op]
		if !ok {
			fail("dataset %q: unknown op %q (known: %s)", name, d.Op, strings.Join(OpNames(), ", "))
			continue
		}
		for _, msg := range spec.checkAll(d) {
			fail("dataset %q (%s): %s", name, d.Op, msg)
		}
		for _, in := range d.inputs() {
			if _, ok := p.Datasets[in]; !ok {
				fail("dataset %q: unknown dataset reference %q", name, in)
			}
		}
	}
	if cyc := p.cycle(); cyc != nil {
		fail("cycle: %s", strings.Join(cyc, " -> "))
	} else {
		p.checkKeyed(fail)
	}
	a := p.Action
	if spec, ok := actions[a.Op]; !ok {
		fail("action: unknown op %q (known: %s)", a.Op, strings.Join(ActionNames(), ", "))
	} else {
		for _, msg := range spec.check(&a) {
			fail("action (%s): %s", a.Op, msg)
		}
	}
	if a.Input == "" {
		fail("action: no input dataset")
	} else if _, ok := p.Datasets[a.Input]; !ok {
		fail("action on a missing dataset %q", a.Input)
	}
	if len(errs) > 0 {
		return &Error{Problems: errs}
	}
	return nil
}

// cycle returns a cycle among the datasets' references, or nil.
func (p *Plan) cycle() []string {
	const (
		white = iota
		grey
		black
	)
	color := make(map[string]int, len(p.Datasets))
	var stack []string
	var found []string
	var visit func(name string) bool
	visit = func(name string) bool {
		d, ok := p.Datasets[name]
		if !ok || d == nil {
			return false
		}
		color[name] = grey
		stack = append(stack, name)
		for _, in := range d.inputs() {
			switch color[in] {
			case grey:
				for i, s := range stack {
					if s == in {
						found = append(append([]string{}, stack[i:]...), in)
						return true
					}
				}
			case white:
				if visit(in) {
					return true
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[name] = black
		return false
	}
	for _, name := range p.Names() {
		if color[name] == white && visit(name) {
			return found
		}
	}
	return nil
}

// Error is a plan that failed validation; it lists every problem found.
type Error struct {
	Problems []string
}

func (e *Error) Error() string {
	if len(e.Problems) == 1 {
		return "plan: " + e.Problems[0]
	}
	return "plan: " + strings.Join(e.Problems, "; ")
}
