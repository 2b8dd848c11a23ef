package ops

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// accFuncs returns the built-in functions that update accumulators: they
// let a plan count and sum what flows through it without a function of
// its own.
func accFuncs() []Func {
	type accArgs struct {
		Acc   *string `json:"acc"`
		Float bool    `json:"float"`
	}
	parse := func(raw json.RawMessage, floats bool) (string, bool, error) {
		var a accArgs
		if err := args(raw, &a); err != nil {
			return "", false, err
		}
		if a.Acc == nil {
			return "", false, errors.New(`needs {"acc": "name"}`)
		}
		if err := checkAccName(*a.Acc); err != nil {
			return "", false, err
		}
		if a.Float && !floats {
			return "", false, errors.New(`takes no "float"`)
		}
		return *a.Acc, a.Float, nil
	}
	// value passes every record on, adding its numeric value to the
	// accumulator with one of the two updates.
	value := func(name, what string, ints func(*Accumulators, string, int64), floats func(*Accumulators, string, float64)) Func {
		return Func{Name: name, Kind: KindFilter,
			Doc: fmt.Sprintf(`keeps every record, and %s their values in the accumulator acc: integers, or floats with "float": true (args {"acc": "total"}); a value that is not a number fails the task`, what),
			New: func(raw json.RawMessage) (any, error) {
				acc, float, err := parse(raw, true)
				if err != nil {
					return nil, err
				}
				return FilterFunc(func(tc *TaskContext, r Record) (bool, error) {
					v := bytes.TrimSpace(r.Value)
					if float {
						x, err := strconv.ParseFloat(string(v), 64)
						if err != nil {
							return false, fmt.Errorf("%s: not a number: %q", name, clipBytes(r.Value))
						}
						floats(tc.accs(), acc, x)
						return true, nil
					}
					n, err := ParseInt(v)
					if err != nil {
						return false, fmt.Errorf("%s: %w", name, err)
					}
					ints(tc.accs(), acc, n)
					return true, nil
				}), nil
			}}
	}
	return []Func{
		{Name: "acc.count", Kind: KindFilter, Doc: `keeps every record, and counts them in the accumulator acc (args {"acc": "lines"})`,
			New: func(raw json.RawMessage) (any, error) {
				acc, _, err := parse(raw, false)
				if err != nil {
					return nil, err
				}
				return FilterFunc(func(tc *TaskContext, r Record) (bool, error) {
					tc.accs().Count(acc, 1)
					return true, nil
				}), nil
			}},
		value("acc.sum", "adds up", (*Accumulators).Add, (*Accumulators).AddFloat),
		value("acc.min", "keeps the least of", (*Accumulators).Min, (*Accumulators).MinFloat),
		value("acc.max", "keeps the greatest of", (*Accumulators).Max, (*Accumulators).MaxFloat),
		{Name: "wellFormed", Kind: KindFilter,
			Doc: `keeps records whose value is UTF-8 text and, with fields, has at least that many sep-separated fields (sep default a tab); counts the records it drops in the accumulator acc if given (args {"acc": "malformed", "fields": 3, "sep": ","})`,
			New: func(raw json.RawMessage) (any, error) {
				var a struct {
					Acc    *string `json:"acc"`
					Fields int     `json:"fields"`
					Sep    *string `json:"sep"`
				}
				if err := args(raw, &a); err != nil {
					return nil, err
				}
				if a.Acc != nil {
					if err := checkAccName(*a.Acc); err != nil {
						return nil, err
					}
				}
				if a.Fields < 0 {
					return nil, fmt.Errorf("fields must be 0 or more, got %d", a.Fields)
				}
				sep := []byte("\t")
				if a.Sep != nil {
					if *a.Sep == "" {
						return nil, errors.New("sep must not be empty")
					}
					sep = []byte(*a.Sep)
				}
				return FilterFunc(func(tc *TaskContext, r Record) (bool, error) {
					ok := utf8.Valid(r.Value) && (a.Fields <= 1 || bytes.Count(r.Value, sep)+1 >= a.Fields)
					if !ok && a.Acc != nil {
						tc.accs().Count(*a.Acc, 1)
					}
					return ok, nil
				}), nil
			}},
	}
}
