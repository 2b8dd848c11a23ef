// Package blocksize is the one-byte encoding of shuffle block sizes that
// map outputs carry (Spark's CompressedMapStatus): executors encode the
// size of each reducer's block (ops), the scheduler's state keeps and
// decodes them for reducer locality (dag). It is a wire and log format:
// one copy, here, imported by both.
package blocksize

import "math"

// MaxSizedReducers is the largest reducer count for which a map output
// carries each reducer's size; above it, only the total.
const MaxSizedReducers = 2000

// Compress compresses a block size to one byte: 0 stays 0, 1 is 1,
// otherwise ceil(log base 1.1 of size), at most 255 (about 35 GiB); sizes
// are exact up to a 10% over-estimate.
func Compress(size uint64) byte {
	switch {
	case size == 0:
		return 0
	case size <= 1:
		return 1
	}
	return byte(min(255, math.Ceil(math.Log(float64(size))/math.Log(1.1))))
}

// Decompress is the inverse of Compress (an estimate).
func Decompress(b byte) uint64 {
	if b == 0 {
		return 0
	}
	return uint64(math.Pow(1.1, float64(b)))
}
