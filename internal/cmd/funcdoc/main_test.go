package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/baton-sched/baton/ops"
)

// docPath is docs/functions.md, from this package's directory.
var docPath = filepath.Join("..", "..", "..", "docs", "functions.md")

func TestFunctionsDocIsFresh(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(nil, &out, &errOut); code != 0 {
		t.Fatalf("funcdoc exited with %d: %s", code, errOut.String())
	}
	want, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatalf("docs/functions.md is stale: run make docs (%v)", err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Fatalf("docs/functions.md is stale: run make docs\n%s", firstDiff(want, out.Bytes()))
	}
}

// firstDiff describes the first line where the file and the generated
// text differ.
func firstDiff(file, gen []byte) string {
	a, b := strings.Split(string(file), "\n"), strings.Split(string(gen), "\n")
	for i := 0; i < len(a) || i < len(b); i++ {
		if i >= len(a) || i >= len(b) || a[i] != b[i] {
			line := func(l []string) string {
				if i < len(l) {
					return l[i]
				}
				return "(end of text)"
			}
			return fmt.Sprintf("first difference at line %d:\n  file:      %s\n  generated: %s", i+1, line(a), line(b))
		}
	}
	return ""
}

func TestRunWritesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "functions.md")
	var out, errOut bytes.Buffer
	if code := run([]string{"-o", path}, &out, &errOut); code != 0 {
		t.Fatalf("funcdoc -o exited with %d: %s", code, errOut.String())
	}
	if out.Len() != 0 {
		t.Errorf("funcdoc -o wrote %d bytes to standard output", out.Len())
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	gen, err := generate(ops.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, gen) {
		t.Error("funcdoc -o wrote something else than generate")
	}
	if code := run([]string{"extra"}, &out, &errOut); code != 2 {
		t.Errorf("funcdoc extra: exit code %d, want 2", code)
	}
}

func TestGenerateEveryFunction(t *testing.T) {
	doc, err := generate(ops.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range ops.NewRegistry().Funcs() {
		if !bytes.Contains(doc, []byte("| `"+f.Name+"` | ")) {
			t.Errorf("function %q has no row", f.Name)
		}
	}
}

// A registry without the functions the prose and examples name cannot be
// documented: the generator fails rather than write a wrong reference.
func TestGenerateRefusesMissingFunctions(t *testing.T) {
	var reg ops.Registry
	reg.MustRegister(ops.NewMap("only", "the only function", func(r ops.Record) (ops.Record, error) { return r, nil }))
	if _, err := generate(&reg); err == nil {
		t.Fatal("generate succeeded for a registry without the functions the reference names")
	}
}

func TestCell(t *testing.T) {
	tests := []struct{ in, want string }{
		{"adds integer values", "adds integer values"},
		{`adds n (args {"n": 1})`, "adds n (args `{\"n\": 1}`)"},
		{`split (args {"sep": "\t"}; default a tab)`, "split (args `{\"sep\": \"\\t\"}`; default a tab)"},
		{`nested {"a": {"b": "}"}} end`, "nested `{\"a\": {\"b\": \"}\"}}` end"},
		{`unclosed {"a": 1`, `unclosed {"a": 1`},
		{"a | b", `a \| b`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := cell(tt.in); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
