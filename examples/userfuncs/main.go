// Command userfuncs is an executor with user functions: a user's own
// execd. It registers Go functions beside the built-ins and runs the
// executor with execd's flags, so plans may name them:
//
//	go build -o bin/ ./examples/userfuncs
//	bin/userfuncs -data-dir /tmp/uf -schedulers 127.0.0.1:7101
//	batonctl submit -wait -f plan.json   # a plan with {"op": "map", "fn": "example.rot13"}
//
// The executor reports the functions it holds when it registers; the
// scheduler accepts plans naming them and runs their tasks only on
// executors that hold them.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"unicode/utf8"

	"github.com/baton-sched/baton/executor"
	"github.com/baton-sched/baton/ops"
)

func main() { os.Exit(executor.Main(os.Args[1:], registry())) }

// registry is the built-ins and this program's functions.
func registry() *ops.Registry {
	reg := ops.NewRegistry()
	reg.MustRegister(
		ops.NewMap("example.rot13", "rotates the letters of a record's value by 13 places", rot13),
		ops.NewFilter("example.palindrome", "keeps records whose value reads the same backwards", palindrome),
		ops.NewFlatMap("example.chars", "splits a record's value into one record a character", chars),
		ops.NewIntAggregator("example.longest", "keeps the largest integer value of a key (as max; an example of an aggregator)",
			func(v []byte) (int64, error) { return strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64) },
			func(a, b int64) int64 { return max(a, b) }),
		// A function with arguments builds its instance from them.
		ops.Func{Name: "example.repeat", Kind: ops.KindMap, Doc: `repeats a record's value n times (args {"n": 2})`, New: newRepeat},
	)
	return reg
}

func rot13(r ops.Record) (ops.Record, error) {
	out := make([]byte, len(r.Value))
	for i, c := range r.Value {
		switch {
		case c >= 'a' && c <= 'z':
			c = 'a' + (c-'a'+13)%26
		case c >= 'A' && c <= 'Z':
			c = 'A' + (c-'A'+13)%26
		}
		out[i] = c
	}
	r.Value = out
	return r, nil
}

func palindrome(r ops.Record) bool {
	v := r.Value
	for i, j := 0, len(v)-1; i < j; i, j = i+1, j-1 {
		if v[i] != v[j] {
			return false
		}
	}
	return len(v) > 0
}

func chars(r ops.Record, emit ops.Emit) error {
	for v := r.Value; len(v) > 0; {
		_, n := utf8.DecodeRune(v)
		if err := emit(ops.Record{Value: v[:n]}); err != nil {
			return err
		}
		v = v[n:]
	}
	return nil
}

func newRepeat(raw json.RawMessage) (any, error) {
	var args struct {
		N *int `json:"n"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields() // as the built-ins: a misspelt argument is an error
	if err := dec.Decode(&args); err != nil || args.N == nil || *args.N < 0 {
		return nil, fmt.Errorf(`needs {"n": k} with k >= 0`)
	}
	n := *args.N
	return ops.MapFunc(func(_ *ops.TaskContext, r ops.Record) (ops.Record, error) {
		r.Value = bytes.Repeat(r.Value, n)
		return r, nil
	}), nil
}
