// Command funcdoc writes the functions reference, docs/functions.md, from
// the built-in function registry (ops.NewRegistry): every function's name
// and Doc line, grouped by kind, with the operators that accept each kind
// (ops.OpsFor). The prose around the tables is page.md.tmpl. Each
// kind's plan example is checked against the registry and run on sample
// records, so the reference cannot drift from the code; main_test.go
// fails when the committed file is stale.
//
//	go run ./internal/cmd/funcdoc -o docs/functions.md   # make docs
package main

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/template"

	"github.com/baton-sched/baton/ops"
	"github.com/baton-sched/baton/plan"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("funcdoc", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("o", "", "write the reference to this file (default: standard output)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "funcdoc: unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		return 2
	}
	doc, err := generate(ops.NewRegistry())
	if err != nil {
		fmt.Fprintf(stderr, "funcdoc: %v\n", err)
		return 1
	}
	if *out == "" {
		_, err = stdout.Write(doc)
	} else {
		err = os.WriteFile(*out, doc, 0o644)
	}
	if err != nil {
		fmt.Fprintf(stderr, "funcdoc: %v\n", err)
		return 1
	}
	return 0
}

// kindDoc is one kind's example. Its prose is the template "intro-<kind>"
// of page.md.tmpl.
type kindDoc struct {
	kind ops.Kind
	// example is one dataset of a plan using a function of this kind
	// with arguments; samples, when set, are records it is run on, and
	// outcome otherwise says what it does.
	example string
	samples []ops.Record
	outcome string
}

// kinds lists the function kinds in the order of the reference.
var kinds = []kindDoc{
	{
		kind:    ops.KindMap,
		example: `{"op": "map", "input": "csv", "fn": {"name": "field", "args": {"i": 1, "sep": ","}}}`,
		samples: []ops.Record{{Value: []byte("a,b,c")}, {Key: []byte("k"), Value: []byte("x,y"), HasKey: true}},
	},
	{
		kind:    ops.KindFlatMap,
		example: `{"op": "flatMap", "input": "csv", "fn": {"name": "split", "args": {"sep": ","}}}`,
		samples: []ops.Record{{Value: []byte("a,b,c")}},
	},
	{
		kind:    ops.KindFilter,
		example: `{"op": "filter", "input": "log", "fn": {"name": "matches", "args": {"re": "^ERROR "}}}`,
		samples: []ops.Record{{Value: []byte("ERROR disk full")}, {Value: []byte("INFO started")}},
	},
	{
		kind:    ops.KindPartition,
		example: `{"op": "mapPartitions", "input": "nums", "fn": {"name": "chaos.fail", "args": {"partitions": [1, 2], "attempts": 2}}}`,
		outcome: "This fails the tasks of partitions 1 and 2 at attempts 0 and 1\n" +
			"(`chaos.fail: partition 1, attempt 0`). Their third attempts pass the records\n" +
			"through, and the job succeeds: two failures of a task are fewer than the\n" +
			"default `-max-task-failures` of 4.",
	},
	{
		kind:    ops.KindAggregator,
		example: `{"op": "reduceByKey", "input": "pairs", "fn": {"name": "concat", "args": {"sep": ";"}}, "partitions": 2}`,
		samples: []ops.Record{
			{Key: []byte("a"), Value: []byte("x"), HasKey: true},
			{Key: []byte("b"), Value: []byte("z"), HasKey: true},
			{Key: []byte("a"), Value: []byte("y"), HasKey: true},
		},
	},
}

// section is one kind's part of the reference, ready to render.
type section struct {
	Kind    string
	Heading string
	Anchor  string
	Intro   string
	TakenBy string // the operators and actions that take them
	Funcs   []row
	Example string // Markdown
}

type row struct{ Name, Doc string }

//go:embed page.md.tmpl
var page string

// generate renders the reference for the functions of reg.
func generate(reg *ops.Registry) ([]byte, error) {
	t, err := template.New("page").Funcs(template.FuncMap{
		// fn names a function in the prose; a name the registry does
		// not hold fails the generator.
		"fn": func(name string) (string, error) {
			if _, ok := reg.Lookup(name); !ok {
				return "", fmt.Errorf("the text names the function %q, which the registry does not hold", name)
			}
			return "`" + name + "`", nil
		},
		// refusal is the error with which the leader refuses a plan
		// whose dataset "f" applies op with the function fnJSON.
		"refusal": func(op, fnJSON string) (string, error) {
			return refusal(reg, op, fnJSON)
		},
	}).Parse(page)
	if err != nil {
		return nil, err
	}
	var sections []section
	covered := map[string]bool{}
	for _, kd := range kinds {
		s, err := buildSection(reg, t, kd)
		if err != nil {
			return nil, fmt.Errorf("%s functions: %w", kd.kind, err)
		}
		for _, f := range reg.Funcs() {
			covered[f.Name] = covered[f.Name] || f.Kind == kd.kind
		}
		sections = append(sections, s)
	}
	for _, f := range reg.Funcs() {
		if !covered[f.Name] {
			return nil, fmt.Errorf("function %q is of kind %d, which the reference does not describe", f.Name, f.Kind)
		}
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, struct {
		Count    int
		Sections []section
	}{len(reg.Funcs()), sections}); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func buildSection(reg *ops.Registry, t *template.Template, kd kindDoc) (section, error) {
	name := kd.kind.String()
	if name == "" {
		return section{}, fmt.Errorf("unknown kind %d", kd.kind)
	}
	s := section{Kind: name, Heading: name + " functions"}
	s.Anchor = anchor(s.Heading)
	intro := t.Lookup("intro-" + name)
	if intro == nil {
		return s, fmt.Errorf("page.md.tmpl has no template %q", "intro-"+name)
	}
	var buf strings.Builder
	if err := intro.Execute(&buf, nil); err != nil {
		return s, err
	}
	s.Intro = strings.TrimSpace(buf.String())
	var operators, actions []string
	for _, op := range ops.OpsFor(kd.kind) {
		switch {
		case slices.Contains(plan.OpNames(), op):
			operators = append(operators, "`"+op+"`")
		case slices.Contains(plan.ActionNames(), op):
			actions = append(actions, "`"+op+"`")
		default:
			return s, fmt.Errorf("%q accepts them but is neither an operator nor an action of the plan language", op)
		}
	}
	var takers []string
	if len(operators) > 0 {
		takers = append(takers, "the "+list(operators)+plural(" operator", len(operators)))
	}
	if len(actions) > 0 {
		takers = append(takers, "the "+list(actions)+plural(" action", len(actions)))
	}
	if len(takers) == 0 {
		return s, fmt.Errorf("no operator takes them")
	}
	s.TakenBy = list(takers)
	for _, f := range reg.Funcs() {
		if f.Kind == kd.kind {
			s.Funcs = append(s.Funcs, row{Name: "`" + f.Name + "`", Doc: cell(f.Doc)})
		}
	}
	var err error
	s.Example, err = example(reg, kd)
	return s, err
}

// refusal compiles a plan whose dataset "f" applies op with the function
// fnJSON, as the leader does at submission, and returns its error.
func refusal(reg *ops.Registry, op, fnJSON string) (string, error) {
	p, err := plan.Parse(fmt.Appendf(nil, `{"datasets": {"in": {"op": "parallelize", "records": ["a"], "partitions": 1},
		"f": {"op": %q, "input": "in", "fn": %s}}, "action": {"op": "collect", "input": "f"}}`, op, fnJSON))
	if err != nil {
		return "", fmt.Errorf("refusal %s %s: %w", op, fnJSON, err)
	}
	if _, err := plan.Compile(p, plan.Options{Functions: reg}); err != nil {
		return err.Error(), nil
	}
	return "", fmt.Errorf("refusal %s %s: the plan is accepted", op, fnJSON)
}

// example checks kd's example dataset against the registry, runs its
// function on the samples, and returns the example's Markdown.
func example(reg *ops.Registry, kd kindDoc) (string, error) {
	var d plan.Dataset
	dec := json.NewDecoder(strings.NewReader(kd.example))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return "", fmt.Errorf("example %s: %w", kd.example, err)
	}
	if d.Fn == nil || len(d.Fn.Args) == 0 {
		return "", fmt.Errorf("example %s: shows no function with arguments", kd.example)
	}
	if f, ok := reg.Lookup(d.Fn.Name); !ok || f.Kind != kd.kind {
		return "", fmt.Errorf("example %s: %q is not a %s function", kd.example, d.Fn.Name, kd.kind)
	}
	if err := reg.CheckFunc(d.Op, *d.Fn); err != nil {
		return "", fmt.Errorf("example %s: %w", kd.example, err)
	}
	md := "```json\n" + kd.example + "\n```\n\n"
	if len(kd.samples) == 0 {
		if kd.outcome == "" {
			return "", fmt.Errorf("example %s: needs samples or an outcome", kd.example)
		}
		return md + kd.outcome, nil
	}
	f, _ := reg.Lookup(d.Fn.Name)
	inst, err := f.New(d.Fn.Args)
	if err != nil {
		return "", err
	}
	lines, err := runSamples(inst, kd.samples)
	if err != nil {
		return "", fmt.Errorf("example %s: %w", kd.example, err)
	}
	return md + lines, nil
}

// runSamples applies a function instance to sample records and describes
// what it makes of them.
func runSamples(inst any, samples []ops.Record) (string, error) {
	tc := &ops.TaskContext{}
	var lines []string
	switch fn := inst.(type) {
	case ops.MapFunc:
		for _, r := range samples {
			out, err := fn(tc, r)
			if err != nil {
				return "", err
			}
			lines = append(lines, record(r)+" → "+record(out))
		}
	case ops.FlatMapFunc:
		for _, r := range samples {
			var outs []string
			if err := fn(tc, r, func(o ops.Record) error { outs = append(outs, record(o)); return nil }); err != nil {
				return "", err
			}
			lines = append(lines, record(r)+" → "+strings.Join(outs, ", "))
		}
	case ops.FilterFunc:
		var kept, dropped []string
		for _, r := range samples {
			keep, err := fn(tc, r)
			if err != nil {
				return "", err
			}
			if keep {
				kept = append(kept, record(r))
			} else {
				dropped = append(dropped, record(r))
			}
		}
		lines = append(lines, "keeps "+orNone(kept)+" and drops "+orNone(dropped))
	case *ops.Aggregator:
		// One task's worth: the values of each key combined in order.
		var in, keys []string
		ints, byts := map[string]int64{}, map[string][]byte{}
		for _, r := range samples {
			in = append(in, record(r))
			k := string(r.Key)
			seen := slices.Contains(keys, k)
			if !seen {
				keys = append(keys, k)
			}
			if fn.IsInt() {
				v, err := fn.IntCreate(r.Value)
				if err != nil {
					return "", err
				}
				if seen {
					v = fn.IntMerge(ints[k], v)
				}
				ints[k] = v
				continue
			}
			v, err := fn.BytesCreate(r.Value)
			if err != nil {
				return "", err
			}
			if seen {
				if v, err = fn.BytesMerge(byts[k], v); err != nil {
					return "", err
				}
			}
			byts[k] = append([]byte(nil), v...)
		}
		slices.Sort(keys) // a reducer emits its keys sorted
		var out []string
		for _, k := range keys {
			v := byts[k]
			if fn.IsInt() {
				v = strconv.AppendInt(nil, ints[k], 10)
			}
			out = append(out, record(ops.Record{Key: []byte(k), Value: v, HasKey: true}))
		}
		lines = append(lines, strings.Join(in, ", ")+" → "+strings.Join(out, ", "))
	default:
		return "", fmt.Errorf("cannot run a %T on samples", inst)
	}
	for i, l := range lines {
		lines[i] = "- " + l
	}
	return strings.Join(lines, "\n"), nil
}

// list joins items as prose: "a", "a and b", "a, b and c".
func list(items []string) string {
	if len(items) < 2 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " and " + items[len(items)-1]
}

func plural(word string, n int) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

func orNone(recs []string) string {
	if len(recs) == 0 {
		return "nothing"
	}
	return strings.Join(recs, ", ")
}

// record writes a record as a plan does, in a code span: "value" or
// ["key","value"].
func record(r ops.Record) string {
	if r.HasKey {
		return "`[" + jsonString(r.Key) + "," + jsonString(r.Value) + "]`"
	}
	return "`" + jsonString(r.Value) + "`"
}

func jsonString(b []byte) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.Encode(string(b)) // a string always encodes
	return strings.TrimSuffix(buf.String(), "\n")
}

// cell makes a Doc line a Markdown table cell: JSON objects in it become
// code spans, and pipes are escaped.
func cell(doc string) string {
	var b strings.Builder
	if !strings.Contains(doc, "`") {
		for {
			i := strings.IndexByte(doc, '{')
			if i < 0 {
				break
			}
			j := objectEnd(doc[i:])
			if j < 0 {
				break
			}
			b.WriteString(doc[:i])
			b.WriteString("`" + doc[i:i+j] + "`")
			doc = doc[i+j:]
		}
	}
	b.WriteString(doc)
	return strings.ReplaceAll(b.String(), "|", `\|`)
}

// objectEnd returns the length of the JSON object s starts with, or -1.
func objectEnd(s string) int {
	depth, inStr := 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case inStr && c == '\\':
			i++
		case c == '"':
			inStr = !inStr
		case inStr:
		case c == '{':
			depth++
		case c == '}':
			depth--
			if depth == 0 {
				return i + 1
			}
		}
	}
	return -1
}

// anchor is the fragment GitHub gives a heading.
func anchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9'):
			b.WriteRune(r)
		}
	}
	return b.String()
}
