package blockstore

import (
	"errors"
	"slices"
	"testing"
)

func TestCachedPartitions(t *testing.T) {
	s, err := Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, c := range []struct {
		key  string
		part int
		data string
	}{{"ca", 0, "a0"}, {"ca", 1, "a1"}, {"cb", 7, ""}, {"caa", 0, "aa0"}} {
		if err := s.PutCached(c.key, c.part, []byte(c.data)); err != nil {
			t.Fatal(err)
		}
	}
	if b, err := s.Cached("ca", 1); err != nil || string(b) != "a1" {
		t.Fatalf("ca/1: %q %v", b, err)
	}
	if b, err := s.Cached("cb", 7); err != nil || len(b) != 0 {
		t.Fatalf("an empty partition: %q %v", b, err)
	}
	if _, err := s.Cached("ca", 2); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a missing partition: %v", err)
	}
	if keys, err := s.CachedKeys(); err != nil || !slices.Equal(keys, []string{"ca", "caa", "cb"}) {
		t.Fatalf("keys %v %v", keys, err)
	}
	if err := s.DeleteCached("ca"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Cached("ca", 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	if b, err := s.Cached("caa", 0); err != nil || string(b) != "aa0" {
		t.Fatalf("a key with ca as prefix survives: %q %v", b, err)
	}
	if keys, _ := s.CachedKeys(); !slices.Equal(keys, []string{"caa", "cb"}) {
		t.Fatalf("keys after delete %v", keys)
	}
	for _, bad := range []string{"", "a\x00b", string(make([]byte, 65))} {
		if err := s.PutCached(bad, 0, nil); err == nil {
			t.Errorf("key %q accepted", bad)
		}
	}
}
