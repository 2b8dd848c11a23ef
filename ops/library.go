package ops

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
)

// library returns the built-in helpers beyond the word-count set: string,
// number and key helpers, filters and the concat combiner.
func library() []Func {
	mapFn := func(name, doc string, f func(r Record) (Record, error)) Func {
		return Func{Name: name, Kind: KindMap, Doc: doc, New: func(raw json.RawMessage) (any, error) {
			return MapFunc(func(_ *TaskContext, r Record) (Record, error) { return f(r) }), noArgs(raw)
		}}
	}
	str := func(raw json.RawMessage, field string) (string, error) {
		m := map[string]*string{}
		if err := args(raw, &m); err != nil {
			return "", err
		}
		for k := range m {
			if k != field {
				return "", fmt.Errorf("unknown argument %q (want %q)", k, field)
			}
		}
		if m[field] == nil {
			return "", fmt.Errorf(`needs {"%s": "..."}`, field)
		}
		return *m[field], nil
	}
	num := func(raw json.RawMessage, field string) (int64, error) {
		m := map[string]*int64{}
		if err := args(raw, &m); err != nil {
			return 0, err
		}
		for k := range m {
			if k != field {
				return 0, fmt.Errorf("unknown argument %q (want %q)", k, field)
			}
		}
		if m[field] == nil {
			return 0, fmt.Errorf(`needs {"%s": N}`, field)
		}
		return *m[field], nil
	}
	filter := func(name, doc string, mk func(raw json.RawMessage) (func([]byte) bool, error)) Func {
		return Func{Name: name, Kind: KindFilter, Doc: doc, New: func(raw json.RawMessage) (any, error) {
			keep, err := mk(raw)
			if err != nil {
				return nil, err
			}
			return FilterFunc(func(_ *TaskContext, r Record) (bool, error) { return keep(r.Value), nil }), nil
		}}
	}
	return []Func{
		mapFn("upper", "upper-cases a record's value", func(r Record) (Record, error) {
			r.Value = bytes.ToUpper(r.Value)
			return r, nil
		}),
		mapFn("trim", "removes white space around a record's value", func(r Record) (Record, error) {
			r.Value = bytes.TrimSpace(r.Value)
			return r, nil
		}),
		mapFn("swap", "swaps a record's key and value (a value-only record gets an empty value)", func(r Record) (Record, error) {
			return Record{Key: r.Value, Value: r.Key, HasKey: true}, nil
		}),
		mapFn("keys", "keeps a record's key, as a value-only record", func(r Record) (Record, error) {
			return Record{Value: r.Key}, nil
		}),
		mapFn("values", "keeps a record's value, as a value-only record", func(r Record) (Record, error) {
			return Record{Value: r.Value}, nil
		}),
		{Name: "splitKV", Kind: KindMap, Doc: `makes (key, value) of a value split at the first sep (args {"sep": "\t"}; default a tab); a value without sep becomes the key, with an empty value`, New: func(raw json.RawMessage) (any, error) {
			sep := "\t"
			if len(raw) > 0 {
				var err error
				if sep, err = str(raw, "sep"); err != nil {
					return nil, err
				}
			}
			if sep == "" {
				return nil, errors.New("sep must not be empty")
			}
			s := []byte(sep)
			return MapFunc(func(_ *TaskContext, r Record) (Record, error) {
				k, v, _ := bytes.Cut(r.Value, s)
				return Record{Key: k, Value: v, HasKey: true}, nil
			}), nil
		}},
		{Name: "mergeKV", Kind: KindMap, Doc: `makes a value-only record of key, sep and value, the reverse of splitKV (args {"sep": "="}; default a tab; "" joins them directly); a value-only record is kept as it is`, New: func(raw json.RawMessage) (any, error) {
			sep := "\t"
			if len(raw) > 0 {
				var err error
				if sep, err = str(raw, "sep"); err != nil {
					return nil, err
				}
			}
			s := []byte(sep)
			return MapFunc(func(_ *TaskContext, r Record) (Record, error) {
				if !r.HasKey {
					return r, nil
				}
				v := make([]byte, 0, len(r.Key)+len(s)+len(r.Value))
				v = append(append(append(v, r.Key...), s...), r.Value...)
				return Record{Value: v}, nil
			}), nil
		}},
		mapFn("unpair", `makes (left, right) of a joined record's value ["left", "right"] (join's output), dropping its key; a missing right side (null, from a left outer join) becomes an empty value`, func(r Record) (Record, error) {
			var pair []*string
			if err := json.Unmarshal(r.Value, &pair); err != nil || len(pair) != 2 || pair[0] == nil {
				return r, fmt.Errorf("unpair: value %q is not a [\"left\", \"right\"] pair", clipBytes(r.Value))
			}
			out := Record{Key: []byte(*pair[0]), HasKey: true}
			if pair[1] != nil {
				out.Value = []byte(*pair[1])
			}
			return out, nil
		}),
		{Name: "element", Kind: KindMap, Doc: `keeps element i (from 0) of a value that is a JSON array of strings (groupByKey's and join's values), keeping the key (args {"i": 0}); null becomes an empty value`, New: func(raw json.RawMessage) (any, error) {
			i, err := num(raw, "i")
			if err != nil {
				return nil, err
			}
			if i < 0 {
				return nil, errors.New("i must be >= 0")
			}
			return MapFunc(func(_ *TaskContext, r Record) (Record, error) {
				var arr []json.RawMessage
				if err := json.Unmarshal(r.Value, &arr); err != nil {
					return r, fmt.Errorf("element: value %q is not a JSON array", clipBytes(r.Value))
				}
				if int(i) >= len(arr) {
					return r, fmt.Errorf("element: value %q has no element %d", clipBytes(r.Value), i)
				}
				var s *string
				if err := json.Unmarshal(arr[i], &s); err != nil {
					return r, fmt.Errorf("element %d of %q is not a string", i, clipBytes(r.Value))
				}
				r.Value = nil
				if s != nil {
					r.Value = []byte(*s)
				}
				return r, nil
			}), nil
		}},
		mapFn("length", "replaces a value that is a JSON array (groupByKey's values; for cogroup's, the number of inputs) by its length, keeping the key", func(r Record) (Record, error) {
			var arr []json.RawMessage
			if err := json.Unmarshal(r.Value, &arr); err != nil {
				return r, fmt.Errorf("length: value %q is not a JSON array", clipBytes(r.Value))
			}
			r.Value = strconv.AppendInt(nil, int64(len(arr)), 10)
			return r, nil
		}),
		{Name: "keyPrefix", Kind: KindMap, Doc: `makes (the first n bytes of the value, the rest) of a record (args {"n": 10}); TeraSort's 10-byte keys`, New: func(raw json.RawMessage) (any, error) {
			n, err := num(raw, "n")
			if err != nil {
				return nil, err
			}
			if n < 0 {
				return nil, errors.New("n must be >= 0")
			}
			return MapFunc(func(_ *TaskContext, r Record) (Record, error) {
				k := min(int(n), len(r.Value))
				return Record{Key: r.Value[:k], Value: r.Value[k:], HasKey: true}, nil
			}), nil
		}},
		{Name: "keyBy", Kind: KindMap, Doc: `keys a record by field i of its value split at sep, keeping the value (args {"i": 0, "sep": ","}; sep defaults to a tab)`, New: func(raw json.RawMessage) (any, error) {
			f, err := newField(raw)
			if err != nil {
				return nil, err
			}
			field := f.(MapFunc)
			return MapFunc(func(tc *TaskContext, r Record) (Record, error) {
				k, err := field(tc, r)
				if err != nil {
					return r, err
				}
				return Record{Key: k.Value, Value: r.Value, HasKey: true}, nil
			}), nil
		}},
		{Name: "split", Kind: KindFlatMap, Doc: `splits a record's value at sep into value-only records (args {"sep": ","})`, New: func(raw json.RawMessage) (any, error) {
			sep, err := str(raw, "sep")
			if err != nil {
				return nil, err
			}
			if sep == "" {
				return nil, errors.New("sep must not be empty")
			}
			s := []byte(sep)
			return FlatMapFunc(func(_ *TaskContext, r Record, emit Emit) error {
				for _, part := range bytes.Split(r.Value, s) {
					if err := emit(Record{Value: part}); err != nil {
						return err
					}
				}
				return nil
			}), nil
		}},
		{Name: "replace", Kind: KindMap, Doc: `replaces every occurrence of old by new in a record's value (args {"old": "a", "new": "b"})`, New: func(raw json.RawMessage) (any, error) {
			a := struct {
				Old *string `json:"old"`
				New *string `json:"new"`
			}{}
			if err := args(raw, &a); err != nil {
				return nil, err
			}
			if a.Old == nil || a.New == nil || *a.Old == "" {
				return nil, errors.New(`needs {"old": "...", "new": "..."} with old not empty`)
			}
			o, n := []byte(*a.Old), []byte(*a.New)
			return MapFunc(func(_ *TaskContext, r Record) (Record, error) {
				r.Value = bytes.ReplaceAll(r.Value, o, n)
				return r, nil
			}), nil
		}},
		{Name: "add", Kind: KindMap, Doc: `adds n to a record's integer value (args {"n": 1})`, New: func(raw json.RawMessage) (any, error) {
			n, err := num(raw, "n")
			if err != nil {
				return nil, err
			}
			return MapFunc(func(_ *TaskContext, r Record) (Record, error) {
				v, err := ParseInt(bytes.TrimSpace(r.Value))
				if err != nil {
					return r, err
				}
				r.Value = strconv.AppendInt(nil, v+n, 10)
				return r, nil
			}), nil
		}},
		{Name: "mul", Kind: KindMap, Doc: `multiplies a record's integer value by n (args {"n": 2})`, New: func(raw json.RawMessage) (any, error) {
			n, err := num(raw, "n")
			if err != nil {
				return nil, err
			}
			return MapFunc(func(_ *TaskContext, r Record) (Record, error) {
				v, err := ParseInt(bytes.TrimSpace(r.Value))
				if err != nil {
					return r, err
				}
				r.Value = strconv.AppendInt(nil, v*n, 10)
				return r, nil
			}), nil
		}},
		{Name: "mod", Kind: KindMap, Doc: `keys a record by its integer value modulo n (args {"n": 10}), keeping the value`, New: func(raw json.RawMessage) (any, error) {
			n, err := num(raw, "n")
			if err != nil {
				return nil, err
			}
			if n <= 0 {
				return nil, errors.New("n must be > 0")
			}
			return MapFunc(func(_ *TaskContext, r Record) (Record, error) {
				v, err := ParseInt(bytes.TrimSpace(r.Value))
				if err != nil {
					return r, err
				}
				return Record{Key: strconv.AppendInt(nil, ((v%n)+n)%n, 10), Value: r.Value, HasKey: true}, nil
			}), nil
		}},
		filter("nonEmpty", "keeps records whose value is not empty", func(raw json.RawMessage) (func([]byte) bool, error) {
			return func(v []byte) bool { return len(v) > 0 }, noArgs(raw)
		}),
		filter("contains", `keeps records whose value contains s (args {"s": "x"})`, func(raw json.RawMessage) (func([]byte) bool, error) {
			sub, err := str(raw, "s")
			return func(v []byte) bool { return bytes.Contains(v, []byte(sub)) }, err
		}),
		filter("startsWith", `keeps records whose value starts with s (args {"s": "x"})`, func(raw json.RawMessage) (func([]byte) bool, error) {
			pre, err := str(raw, "s")
			return func(v []byte) bool { return bytes.HasPrefix(v, []byte(pre)) }, err
		}),
		filter("matches", `keeps records whose value matches a regular expression (args {"re": "^a.*z$"}; Go syntax)`, func(raw json.RawMessage) (func([]byte) bool, error) {
			expr, err := str(raw, "re")
			if err != nil {
				return nil, err
			}
			re, err := regexp.Compile(expr)
			if err != nil {
				return nil, err
			}
			return re.Match, nil
		}),
		filter("even", "keeps records whose integer value is even; a value that is not an integer is dropped", func(raw json.RawMessage) (func([]byte) bool, error) {
			return func(v []byte) bool {
				n, err := ParseInt(bytes.TrimSpace(v))
				return err == nil && n%2 == 0
			}, noArgs(raw)
		}),
		filter("atLeast", `keeps records whose integer value is n or more (args {"n": 10}); a value that is not an integer is dropped`, func(raw json.RawMessage) (func([]byte) bool, error) {
			lo, err := num(raw, "n")
			return func(v []byte) bool {
				n, err := ParseInt(bytes.TrimSpace(v))
				return err == nil && n >= lo
			}, err
		}),
		{Name: "concat", Kind: KindAggregator, Doc: `joins the values of a key with sep (args {"sep": ","}; default a comma), in the order they meet`, New: func(raw json.RawMessage) (any, error) {
			sep := ","
			if len(raw) > 0 {
				var err error
				if sep, err = str(raw, "sep"); err != nil {
					return nil, err
				}
			}
			s := []byte(sep)
			return &Aggregator{Name: "concat",
				BytesCreate: func(v []byte) ([]byte, error) { return v, nil },
				BytesMerge: func(a, b []byte) ([]byte, error) {
					out := make([]byte, 0, len(a)+len(s)+len(b))
					out = append(append(append(out, a...), s...), b...)
					return out, nil
				},
			}, nil
		}},
	}
}

// clipBytes shortens a value quoted in an error message.
func clipBytes(b []byte) []byte {
	if len(b) > 64 {
		return append(append([]byte(nil), b[:64]...), "..."...)
	}
	return b
}
