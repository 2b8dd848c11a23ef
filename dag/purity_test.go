package dag

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// allowedImports are the only packages dag's code may import: nothing
// that does I/O, reads a clock, draws random numbers or synchronises
// goroutines. The state machine must give the same result on every
// replica.
var allowedImports = map[string]bool{
	"bytes":                             true,
	"encoding/binary":                   true,
	"encoding/json":                     true,
	"errors":                            true,
	"fmt":                               true,
	"math":                              true,
	"math/bits":                         true,
	"slices":                            true,
	"sort":                              true,
	"strconv":                           true,
	"strings":                           true,
	"unicode":                           true,
	"unicode/utf8":                      true,
	"github.com/baton-sched/baton/plan": true,
	// blocksize imports only math (the size codec map outputs carry).
	"github.com/baton-sched/baton/blocksize": true,
}

// TestPurity checks that dag's non-test code imports only allowed
// packages and starts no goroutines.
func TestPurity(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, name, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		checked++
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if !allowedImports[path] {
				t.Errorf("%s imports %q: dag must stay free of I/O, clocks, randomness and concurrency", fset.Position(imp.Pos()), path)
			}
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.GoStmt:
				t.Errorf("%s: go statement: dag starts no goroutines", fset.Position(n.Pos()))
			case *ast.SelectStmt:
				t.Errorf("%s: select statement: dag uses no channels", fset.Position(n.Pos()))
			case *ast.ChanType:
				t.Errorf("%s: channel type: dag uses no channels", fset.Position(n.Pos()))
			}
			return true
		})
	}
	if checked < 5 {
		t.Fatalf("checked only %d files", checked)
	}
}
