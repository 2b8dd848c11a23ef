// Package ops runs Baton's operators: it evaluates a task — one partition
// of a stage's output node — by pipelining the stage's narrow operators,
// reading sources (text files split by byte range, ranges, inline records)
// and shuffles (through a Fetcher), and either writes the partition's
// records into one block per reducer (a map task, combining values of a key
// first when the shuffle has a combiner) or evaluates the job's action on
// it (a result task).
//
// Functions are looked up by name in a Registry: a set is built in
// (words, lower, pairWithOne, field, toInt, the sum/count/min/max
// aggregators, and the chaos.* functions for drills and tests); a Registry
// also implements plan.Functions, so submissions are checked against it.
//
// Records are key/value byte strings (or value-only) in a compact
// encoding (AppendRecord, DecodeRecords).
package ops
