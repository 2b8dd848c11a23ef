package executor

import (
	"bytes"
	"errors"
	"flag"
	"strings"
	"testing"
)

// execd -h lists its flags without the chaos- ones drills and tests use
// (they still parse).
func TestHelpHidesTheChaosFlags(t *testing.T) {
	var out bytes.Buffer
	if _, _, err := parseFlags("execd", []string{"-h"}, &out); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	if strings.Contains(out.String(), "chaos-") || !strings.Contains(out.String(), "-memory") || !strings.Contains(out.String(), "-data-dir") {
		t.Fatalf("execd -h:\n%s", out.String())
	}
	if _, _, err := parseFlags("execd", []string{"-data-dir", t.TempDir(), "-chaos-exit-before-rename", "1"}, &out); err != nil {
		t.Fatalf("a chaos flag no longer parses: %v", err)
	}
}
