// Package bytesize reads byte counts as flags give them: a whole number,
// optionally followed by B, KiB, MiB or GiB (KB, MB, GB and K, M, G mean
// the same, binary units), the one reading execd and batonctl share.
package bytesize

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

var units = map[string]uint64{"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30}

// Parse reads a byte count such as 64MiB.
func Parse(v string) (uint64, error) {
	v = strings.TrimSpace(v)
	i := len(v)
	for i > 0 && (v[i-1] < '0' || v[i-1] > '9') {
		i--
	}
	n, err := strconv.ParseUint(v[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a byte count (like 64MiB)", v)
	}
	m, ok := units[strings.ToLower(strings.TrimSpace(v[i:]))]
	if !ok {
		return 0, fmt.Errorf("%q: unknown unit %q (B, KiB, MiB, GiB)", v, v[i:])
	}
	if n > math.MaxUint64/m {
		return 0, fmt.Errorf("%q is too large a byte count", v)
	}
	return n * m, nil
}
