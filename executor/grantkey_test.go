package executor

import (
	"bytes"
	"os"
	"testing"
)

// TestGrantKeyOutlivesARestart: the grant key of the latest welcome is
// kept in the data directory (owner-only), so a restarted executor serves
// its blocks at once instead of refusing fetches until a leader welcomes
// it again; an empty key (ACLs off) is kept too.
func TestGrantKeyOutlivesARestart(t *testing.T) {
	dir := t.TempDir()
	if _, ok := loadGrantKey(dir); ok {
		t.Fatal("a key before any welcome")
	}
	e := &Executor{opts: Options{DataDir: dir}}
	e.setGrantKey([]byte("k1"))
	if k, ok := loadGrantKey(dir); !ok || !bytes.Equal(k, []byte("k1")) {
		t.Fatalf("kept key %q %v", k, ok)
	}
	if st, err := os.Stat(grantKeyPath(dir)); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", st.Mode(), err)
	}
	e.setGrantKey(nil)
	if k, ok := loadGrantKey(dir); !ok || len(k) != 0 {
		t.Fatalf("an empty key: %q %v", k, ok)
	}
}
