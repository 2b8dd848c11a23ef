package ops

import (
	"encoding/json"
	"fmt"
)

// This file is the API for user functions: constructors for functions
// without arguments, for the common kinds, to register in a Registry that
// a user's own execd passes to executor.Main. A function with arguments
// is a Func whose New reads them.

// NewMap returns a map function (one record in, one out) named name.
func NewMap(name, doc string, fn func(r Record) (Record, error)) Func {
	return Func{Name: name, Kind: KindMap, Doc: doc, New: func(raw json.RawMessage) (any, error) {
		return MapFunc(func(_ *TaskContext, r Record) (Record, error) { return fn(r) }), noArgs(raw)
	}}
}

// NewFlatMap returns a flatMap function (one record in, any out).
func NewFlatMap(name, doc string, fn func(r Record, emit Emit) error) Func {
	return Func{Name: name, Kind: KindFlatMap, Doc: doc, New: func(raw json.RawMessage) (any, error) {
		return FlatMapFunc(func(_ *TaskContext, r Record, emit Emit) error { return fn(r, emit) }), noArgs(raw)
	}}
}

// NewFilter returns a filter function (keep a record or not).
func NewFilter(name, doc string, keep func(r Record) bool) Func {
	return Func{Name: name, Kind: KindFilter, Doc: doc, New: func(raw json.RawMessage) (any, error) {
		return FilterFunc(func(_ *TaskContext, r Record) (bool, error) { return keep(r), nil }), noArgs(raw)
	}}
}

// NewPartition returns a mapPartitions function: it reads its partition's
// records by calling in and emits its output.
func NewPartition(name, doc string, fn func(in func(func(Record) error) error, emit Emit) error) Func {
	return Func{Name: name, Kind: KindPartition, Doc: doc, New: func(raw json.RawMessage) (any, error) {
		return PartitionFunc(func(_ *TaskContext, in func(func(Record) error) error, emit Emit) error { return fn(in, emit) }), noArgs(raw)
	}}
}

// NewIntAggregator returns an aggregator (reduceByKey, reduce) over
// integer values: create turns a value into a combiner, merge merges two.
func NewIntAggregator(name, doc string, create func(v []byte) (int64, error), merge func(a, b int64) int64) Func {
	return Func{Name: name, Kind: KindAggregator, Doc: doc, New: func(raw json.RawMessage) (any, error) {
		return &Aggregator{Name: name, IntCreate: create, IntMerge: merge}, noArgs(raw)
	}}
}

// NewBytesAggregator returns an aggregator over byte-string values.
// merge must not keep a or b: their bytes may be reused.
func NewBytesAggregator(name, doc string, create func(v []byte) ([]byte, error), merge func(a, b []byte) ([]byte, error)) Func {
	return Func{Name: name, Kind: KindAggregator, Doc: doc, New: func(raw json.RawMessage) (any, error) {
		return &Aggregator{Name: name, BytesCreate: create, BytesMerge: merge}, noArgs(raw)
	}}
}

// MustRegister is Register for functions known at build time: it panics
// on a bad or duplicate function.
func (r *Registry) MustRegister(fs ...Func) {
	for _, f := range fs {
		if err := r.Register(f); err != nil {
			panic(fmt.Sprintf("%v", err))
		}
	}
}
