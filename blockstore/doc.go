// Package blockstore keeps an executor's shuffle blocks and indirect task
// results in Pebble, each block checksummed (CRC32C) and verified on read,
// and serves them over gRPC (the api.Blocks service): reducers fetch their
// input with a Fetcher, one stream per executor, and the scheduler fetches
// indirect results.
//
// Map outputs are written in bulk: all of a map task's blocks in one
// synced batch (WriteBatch, the default) or in one ingested sstable
// (WriteIngest); BenchmarkPutMapOutput measures both. Blocks of released
// jobs are deleted by shuffle and by job.
package blockstore
