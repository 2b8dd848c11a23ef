package blocksize

import "testing"

// TestCompressPinsTheFormat pins the encoding: it is in map outputs on
// the wire and in the log, so a change would make replicas and old logs
// disagree on sizes.
func TestCompressPinsTheFormat(t *testing.T) {
	for _, tc := range []struct {
		size uint64
		want byte
	}{{0, 0}, {1, 1}, {2, 8}, {10, 25}, {1000, 73}, {1 << 20, 146}, {1 << 30, 219}, {1 << 40, 255}} {
		if got := Compress(tc.size); got != tc.want {
			t.Errorf("Compress(%d) = %d, want %d", tc.size, got, tc.want)
		}
	}
}

// TestDecompressEstimatesWithinTenPercent: decoding over-estimates by at
// most 10% below the cap.
func TestDecompressEstimatesWithinTenPercent(t *testing.T) {
	for size := uint64(2); size < 1<<34; size = size*3 + 1 {
		got := Decompress(Compress(size))
		if float64(got) < float64(size)*0.999 || float64(got) > float64(size)*1.1001 {
			t.Fatalf("size %d decodes to %d", size, got)
		}
	}
}
