// Package plan is Baton's job model: the Plan a user writes (named
// datasets made by operators, and an action, in JSON) and the Graph it
// compiles to, which the scheduler consumes and the Raft log records.
//
// A Graph is a DAG of nodes in topological order. Each node has a partition
// count and dependencies on earlier nodes: narrow ones (one-to-one, range;
// a union is a range dependency on each input), which the scheduler
// pipelines into one stage, and shuffle ones, which are stage boundaries.
// A shuffle dependency carries its key (the shuffle's identity, derived
// from the map side's lineage so equal lineage shares map outputs), its
// partitioner and its reducer count.
//
// Plans are validated before they are compiled and graphs before they are
// logged: unknown operators and dataset references, cycles, partition
// counts below one, shuffles without a key and actions on missing datasets
// are errors that list every problem found.
package plan
