package bytesize

import "testing"

func TestParse(t *testing.T) {
	for in, want := range map[string]uint64{"0": 0, "17": 17, "64MiB": 64 << 20, "64 mb": 64 << 20, "2G": 2 << 30, "512KiB": 512 << 10, "3B": 3} {
		if got, err := Parse(in); err != nil || got != want {
			t.Errorf("Parse(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "MiB", "12TB", "-1", "99999999999999999999GiB", "1.5GiB"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}
