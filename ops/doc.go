// Package ops runs Baton's operators: it evaluates a task — one partition
// of a stage's output node — by pipelining the stage's narrow operators,
// reading sources (text files split by byte range, ranges, inline records)
// and shuffles (through a Fetcher), and either writes the partition's
// records into one block per reducer (a map task, combining values of a key
// first when the shuffle has a combiner) or evaluates the job's action on
// it (a result task).
//
// Functions are looked up by name in a Registry: a library is built in
// (string, number and key helpers, filters, the sum/count/min/max/concat
// aggregators, and the chaos.* functions for drills and tests; see
// docs/functions.md), and a user's own execd registers more (user.go,
// executor.Main). A Registry also implements plan.Functions, so
// submissions can be checked against it. The pipe operator runs external
// programs (pipe.go).
//
// Records are key/value byte strings (or value-only) in a compact
// encoding (AppendRecord, DecodeRecords).
package ops
