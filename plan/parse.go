package plan

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strings"
)

// decodeError turns a JSON decoding error of a plan into one a person
// can act on: where in the file (line and column), which dataset and
// field, and a suggestion for a misspelt field.
func decodeError(data []byte, err error) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return errors.New("plan: the plan is empty (a plan is a JSON object with datasets and an action: docs/plans.md)")
	}
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		line, col := position(data, syn.Offset-1) // the offending character
		return fmt.Errorf("plan: line %d, column %d: %s", line, col, strings.TrimPrefix(syn.Error(), "json: "))
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		line, col := position(data, int64(len(data)))
		return fmt.Errorf("plan: line %d, column %d: the JSON ends early (an unclosed brace, bracket or string?)", line, col)
	case errors.As(err, &typ):
		line, col := position(data, typ.Offset)
		field := typ.Field
		if ds := datasetAt(data, typ.Offset); ds != "" && strings.HasPrefix(field, "datasets.") {
			field = "datasets." + ds + strings.TrimPrefix(field, "datasets")
		}
		return fmt.Errorf("plan: line %d, column %d: %s must be %s, not %s", line, col, fieldPath(field), jsonKind(typ.Type), article(typ.Value))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		if e := unknownField(data); e != nil {
			return e
		}
	}
	return fmt.Errorf("plan: %s", strings.TrimPrefix(err.Error(), "json: "))
}

// datasetAt names the dataset whose definition holds a byte offset of
// the plan, or "".
func datasetAt(data []byte, off int64) string {
	dec := json.NewDecoder(bytes.NewReader(data))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return ""
	}
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return ""
		}
		if k != "datasets" {
			var skip json.RawMessage
			if dec.Decode(&skip) != nil {
				return ""
			}
			continue
		}
		if t, err := dec.Token(); err != nil || t != json.Delim('{') {
			return ""
		}
		for dec.More() {
			name, err := dec.Token()
			if err != nil {
				return ""
			}
			var skip json.RawMessage
			if dec.Decode(&skip) != nil {
				return ""
			}
			if dec.InputOffset() >= off {
				s, _ := name.(string)
				return s
			}
		}
		return ""
	}
	return ""
}

// position is the line and column (from 1) of a byte offset.
func position(data []byte, off int64) (line, col int) {
	off = min(max(off, 0), int64(len(data)))
	before := data[:off]
	line = bytes.Count(before, []byte("\n")) + 1
	col = int(off) - bytes.LastIndexByte(before, '\n')
	return line, col
}

// fieldPath names a field of the plan as decoding reports it
// ("datasets.lines.partitions"): `dataset "lines": field "partitions"`.
func fieldPath(f string) string {
	parts := strings.Split(f, ".")
	switch {
	case len(parts) >= 3 && parts[0] == "datasets":
		return fmt.Sprintf("dataset %q: field %q", parts[1], strings.Join(parts[2:], "."))
	case len(parts) == 2 && parts[0] == "datasets":
		return fmt.Sprintf("dataset %q", parts[1])
	case len(parts) >= 2 && parts[0] == "action":
		return fmt.Sprintf("action: field %q", strings.Join(parts[1:], "."))
	case f == "":
		return "the plan"
	}
	return fmt.Sprintf("field %q", f)
}

func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct, reflect.Pointer:
		return "an object"
	}
	return t.String()
}

func article(v string) string {
	switch v {
	case "object", "array":
		return "an " + strings.Replace(v, "array", "list", 1)
	case "number", "string", "bool":
		return "a " + strings.Replace(v, "bool", "boolean", 1)
	}
	return v
}

// unknownField finds the field the strict decoder refused and says where
// it is, suggesting the known field it is closest to.
func unknownField(data []byte) error {
	var top map[string]json.RawMessage
	if json.Unmarshal(data, &top) != nil {
		return nil
	}
	if e := checkFields("the plan", top, reflect.TypeOf(Plan{})); e != nil {
		return e
	}
	var ds map[string]map[string]json.RawMessage
	if json.Unmarshal(top["datasets"], &ds) == nil {
		names := make([]string, 0, len(ds))
		for n := range ds {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			if e := checkFields(fmt.Sprintf("dataset %q", n), ds[n], reflect.TypeOf(Dataset{})); e != nil {
				return e
			}
		}
	}
	var action map[string]json.RawMessage
	if json.Unmarshal(top["action"], &action) == nil {
		return checkFields("action", action, reflect.TypeOf(Action{}))
	}
	return nil
}

func checkFields(where string, obj map[string]json.RawMessage, t reflect.Type) error {
	known := jsonFields(t)
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if known[k] {
			continue
		}
		names := make([]string, 0, len(known))
		for n := range known {
			names = append(names, n)
		}
		sort.Strings(names)
		msg := fmt.Sprintf("plan: %s: unknown field %q", where, k)
		if s := closest(k, names); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		} else {
			msg += " (known: " + strings.Join(names, ", ") + ")"
		}
		return errors.New(msg)
	}
	return nil
}

// jsonFields are the JSON names of a struct's fields.
func jsonFields(t reflect.Type) map[string]bool {
	out := map[string]bool{}
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out[name] = true
		}
	}
	return out
}

// closest is the name nearest to s, when it is near enough to be what
// was meant ("partition" for "partitions"), or "".
func closest(s string, names []string) string {
	best, bestD := "", 1<<30
	for _, n := range names {
		d := editDistance(strings.ToLower(s), strings.ToLower(n))
		if d < bestD {
			best, bestD = n, d
		}
	}
	if bestD <= 1 || bestD <= 2 && len(s) >= 4 {
		return best
	}
	return ""
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// keyed are the operators (and actions) that need key-value records.
var keyed = map[string]bool{"mapValues": true, "reduceByKey": true, "groupByKey": true, "sortByKey": true, "cogroup": true, "join": true, "countByKey": true}

// valueSource names why a dataset surely holds values without keys (a
// range, a text file, values given inline, and what filters, unions,
// repartitions or de-duplicates only those), or "" when it may hold keys.
func (p *Plan) valueSource(name string, depth int) string {
	d := p.Datasets[name]
	if d == nil || depth > len(p.Datasets) {
		return ""
	}
	switch d.Op {
	case "range", "textFile":
		return d.Op
	case "parallelize":
		if len(d.Records) == 0 {
			return ""
		}
		for _, r := range d.Records {
			if r.HasKey {
				return ""
			}
		}
		return "parallelize of values"
	case "filter", "repartition", "distinct":
		if src := p.valueSource(d.Input, depth+1); src != "" {
			return src
		}
	case "union":
		src := ""
		for _, in := range d.inputs() {
			if src = p.valueSource(in, depth+1); src == "" {
				return ""
			}
		}
		return src
	}
	return ""
}

// checkKeyed reports the key-value operators that read values without
// keys, which would fail every task at run time.
func (p *Plan) checkKeyed(fail func(format string, args ...any)) {
	hint := "make key-value records first, e.g. a map with pairWithOne or keyBy-style function"
	for _, name := range p.Names() {
		d := p.Datasets[name]
		if d == nil || !keyed[d.Op] {
			continue
		}
		for _, in := range d.inputs() {
			if src := p.valueSource(in, 0); src != "" {
				fail("dataset %q (%s): its input %q holds values without keys (%s), and %s needs key-value records: %s", name, d.Op, in, src, d.Op, hint)
			}
		}
	}
	if a := p.Action; keyed[a.Op] {
		if src := p.valueSource(a.Input, 0); src != "" {
			fail("action (%s): its input %q holds values without keys (%s), and %s needs key-value records: %s", a.Op, a.Input, src, a.Op, hint)
		}
	}
}
