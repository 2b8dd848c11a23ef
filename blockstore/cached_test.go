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
		gen  uint64
		part int
		data string
	}{{"ca", 1, 0, "a0"}, {"ca", 1, 1, "a1"}, {"ca", 2, 0, "a0 anew"}, {"cb", 3, 7, ""}, {"caa", 4, 0, "aa0"}} {
		if err := s.PutCached(c.key, c.gen, c.part, []byte(c.data)); err != nil {
			t.Fatal(err)
		}
	}
	if b, err := s.Cached("ca", 1, 1); err != nil || string(b) != "a1" {
		t.Fatalf("ca/1/1: %q %v", b, err)
	}
	if b, err := s.Cached("ca", 2, 0); err != nil || string(b) != "a0 anew" {
		t.Fatalf("a generation is apart: %q %v", b, err)
	}
	if _, err := s.Cached("ca", 2, 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a partition of another generation passed: %v", err)
	}
	if b, err := s.Cached("cb", 3, 7); err != nil || len(b) != 0 {
		t.Fatalf("an empty partition: %q %v", b, err)
	}
	want := []CachedSet{{"ca", 1}, {"ca", 2}, {"caa", 4}, {"cb", 3}}
	if sets, err := s.CachedSets(); err != nil || !slices.Equal(sets, want) {
		t.Fatalf("sets %v %v, want %v", sets, err, want)
	}
	if err := s.DeleteCachedGen("ca", 1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Cached("ca", 1, 0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after deleting generation 1: %v", err)
	}
	if _, err := s.Cached("ca", 2, 0); err != nil {
		t.Fatalf("generation 2 went with 1: %v", err)
	}
	if err := s.DeleteCached("ca"); err != nil {
		t.Fatal(err)
	}
	if b, err := s.Cached("caa", 4, 0); err != nil || string(b) != "aa0" {
		t.Fatalf("a key with ca as prefix survives: %q %v", b, err)
	}
	if sets, _ := s.CachedSets(); !slices.Equal(sets, []CachedSet{{"caa", 4}, {"cb", 3}}) {
		t.Fatalf("sets after delete %v", sets)
	}
	for _, bad := range []string{"", "a\x00b", string(make([]byte, 65))} {
		if err := s.PutCached(bad, 1, 0, nil); err == nil {
			t.Errorf("key %q accepted", bad)
		}
	}
}
