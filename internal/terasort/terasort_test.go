package terasort

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGenSortValidate(t *testing.T) {
	dir := t.TempDir()
	in, paths, err := Gen(dir, 3, 300_000, 7)
	if err != nil {
		t.Fatal(err)
	}
	if in.Records != 3*1000 {
		t.Fatalf("%d records, want 3000", in.Records)
	}
	if _, err := Validate(paths); err == nil {
		t.Fatal("unsorted input validated")
	}
	out := filepath.Join(dir, "sorted")
	sum, err := SortLocal(paths, out)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Validate([]string{out})
	if err != nil {
		t.Fatal(err)
	}
	if got != in || sum != in {
		t.Fatalf("sorted summary %+v / %+v, input %+v", got, sum, in)
	}
	// A lost record changes the summary; a torn one fails validation.
	b, _ := os.ReadFile(out)
	os.WriteFile(out, b[RecordSize:], 0o644)
	if got, _ := Validate([]string{out}); got == in {
		t.Fatal("a lost record went unnoticed")
	}
	os.WriteFile(out, b[:len(b)-3], 0o644)
	if _, err := Validate([]string{out}); err == nil || !strings.Contains(err.Error(), "record of") {
		t.Fatalf("a torn record: %v", err)
	}
}
