package ops

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
)

// call applies a registered function to one record (an aggregator to
// values combined in order) and formats what comes out, or the error.
func call(t *testing.T, name, args string, in ...Record) string {
	t.Helper()
	f, ok := NewRegistry().Lookup(name)
	if !ok {
		t.Fatalf("no function %q", name)
	}
	var raw json.RawMessage
	if args != "" {
		raw = json.RawMessage(args)
	}
	inst, err := f.New(raw)
	if err != nil {
		return "new: " + err.Error()
	}
	var out []string
	emit := func(r Record) error { out = append(out, FormatRecord(r)); return nil }
	for _, r := range in {
		switch fn := inst.(type) {
		case MapFunc:
			o, err := fn(&TaskContext{}, r)
			if err != nil {
				return "error: " + err.Error()
			}
			emit(o)
		case FlatMapFunc:
			if err := fn(&TaskContext{}, r, emit); err != nil {
				return "error: " + err.Error()
			}
		case FilterFunc:
			keep, err := fn(&TaskContext{}, r)
			if err != nil {
				return "error: " + err.Error()
			}
			if keep {
				emit(r)
			}
		case *Aggregator:
			return aggregate(t, fn, in)
		default:
			t.Fatalf("%s: unexpected instance %T", name, inst)
		}
	}
	return strings.Join(out, " | ")
}

func aggregate(t *testing.T, a *Aggregator, in []Record) string {
	if a.IsInt() {
		var acc int64
		for i, r := range in {
			v, err := a.IntCreate(r.Value)
			if err != nil {
				return "error: " + err.Error()
			}
			if i == 0 {
				acc = v
			} else {
				acc = a.IntMerge(acc, v)
			}
		}
		return strconv.FormatInt(acc, 10)
	}
	var acc []byte
	for i, r := range in {
		v, err := a.BytesCreate(r.Value)
		if err != nil {
			return "error: " + err.Error()
		}
		if i == 0 {
			acc = append([]byte(nil), v...)
		} else if acc, err = a.BytesMerge(acc, v); err != nil {
			return "error: " + err.Error()
		}
	}
	return string(acc)
}

func v(s string) Record     { return Record{Value: []byte(s)} }
func kv(k, s string) Record { return Record{Key: []byte(k), Value: []byte(s), HasKey: true} }

// TestBuiltinFunctions pins every built-in function's behaviour as
// docs/functions.md describes it.
func TestBuiltinFunctions(t *testing.T) {
	for _, tc := range []struct {
		name, args string
		in         []Record
		want       string
	}{
		{"words", "", []Record{v("  to be\tor  not\n")}, "to | be | or | not"},
		{"lower", "", []Record{kv("K", "MiXeD")}, "K\tmixed"},
		{"upper", "", []Record{v("MiXeD")}, "MIXED"},
		{"trim", "", []Record{v("  x y \n")}, "x y"},
		{"pairWithOne", "", []Record{v("w")}, "w\t1"},
		{"field", `{"i": 1, "sep": ","}`, []Record{v("a,b,c")}, "b"},
		{"field", `{"i": 5, "sep": ","}`, []Record{v("a,b")}, "error: field: the record \"a,b\" has 2 fields, field 5 asked for"},
		{"toInt", "", []Record{v(" 042 ")}, "42"},
		{"toInt", "", []Record{v("x")}, "error: "},
		{"swap", "", []Record{kv("k", "v")}, "v\tk"},
		{"keys", "", []Record{kv("k", "v")}, "k"},
		{"values", "", []Record{kv("k", "v")}, "v"},
		{"splitKV", "", []Record{v("k\tv\tw")}, "k\tv\tw"},
		{"splitKV", `{"sep": "="}`, []Record{v("a=b")}, "a\tb"},
		{"mergeKV", `{"sep": ""}`, []Record{kv("ab", "cd"), v("alone")}, "abcd | alone"},
		{"mergeKV", "", []Record{kv("k", "v")}, "k\tv"},
		{"keyPrefix", `{"n": 3}`, []Record{v("abcdef")}, "abc\tdef"},
		{"keyPrefix", `{"n": 9}`, []Record{v("ab")}, "ab\t"},
		{"keyBy", `{"i": 1, "sep": ","}`, []Record{v("1,ada,fr")}, "ada\t1,ada,fr"},
		{"split", `{"sep": ","}`, []Record{v("a,b,,c")}, "a | b |  | c"},
		{"replace", `{"old": "a", "new": "o"}`, []Record{v("banana")}, "bonono"},
		{"add", `{"n": 5}`, []Record{v("37")}, "42"},
		{"mul", `{"n": -2}`, []Record{v("21")}, "-42"},
		{"mod", `{"n": 3}`, []Record{v("10"), v("-1")}, "1\t10 | 2\t-1"},
		{"nonEmpty", "", []Record{v(""), v("x")}, "x"},
		{"contains", `{"s": "an"}`, []Record{v("banana"), v("kiwi")}, "banana"},
		{"startsWith", `{"s": "ki"}`, []Record{v("banana"), v("kiwi")}, "kiwi"},
		{"matches", `{"re": "^b.*a$"}`, []Record{v("banana"), v("bananas")}, "banana"},
		{"matches", `{"re": "("}`, nil, "new: "},
		{"even", "", []Record{v("1"), v("2"), v("x")}, "2"},
		{"atLeast", `{"n": 10}`, []Record{v("9"), v("10"), v("11")}, "10 | 11"},
		{"unpair", "", []Record{kv("u1", `["ada","book"]`), kv("u2", `["bob",null]`)}, "ada\tbook | bob\t"},
		{"unpair", "", []Record{v(`["only"]`)}, "error: unpair: "},
		{"element", `{"i": 1}`, []Record{kv("k", `["a","b","c"]`), kv("j", `["x",null]`)}, "k\tb | j\t"},
		{"element", `{"i": 3}`, []Record{v(`["a"]`)}, "error: element: "},
		{"length", "", []Record{kv("k", `["a","b","c"]`), kv("e", `[]`)}, "k\t3 | e\t0"},
		{"sum", "", []Record{v("1"), v("2"), v("39")}, "42"},
		{"count", "", []Record{v("a"), v("b")}, "2"},
		{"min", "", []Record{v("5"), v("-3"), v("8")}, "-3"},
		{"max", "", []Record{v("5"), v("-3"), v("8")}, "8"},
		{"concat", `{"sep": "+"}`, []Record{v("a"), v("b"), v("c")}, "a+b+c"},
		{"concat", "", []Record{v("a"), v("b")}, "a,b"},
		{"add", `{"m": 1}`, nil, "new: "},
		{"upper", `{"x": 1}`, nil, "new: takes no arguments"},
	} {
		got := call(t, tc.name, tc.args, tc.in...)
		// An expected error is a prefix of the message.
		prefix := strings.HasPrefix(tc.want, "new: ") || strings.HasPrefix(tc.want, "error: ")
		if got != tc.want && !(prefix && strings.HasPrefix(got, tc.want)) {
			t.Errorf("%s %s: got %q, want %q", tc.name, tc.args, got, tc.want)
		}
	}
}
