package fsm

import (
	"bytes"
	"errors"
	"testing"

	"github.com/baton-sched/baton/fsm/fsmpb"
	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"
)

func applyACL(t *testing.T, f *FSM, index uint64, c ACLCommand) error {
	t.Helper()
	data, err := EncodeACL(int64(index), c)
	if err != nil {
		t.Fatal(err)
	}
	r := f.Apply(&raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: data}).(*Response)
	return r.Results[0].Err
}

func mkToken(accessor, secret, policy string) Token {
	return Token{Accessor: accessor, SecretHash: HashSecret(secret), Name: accessor, Policy: policy, Created: 7}
}

// TestACLLifecycle: ACLs are off until bootstrapped, bootstrapped once;
// tokens resolve by secret; refused changes are results, not crashes; the
// last management token stays.
func TestACLLifecycle(t *testing.T) {
	f := New(Options{})
	if f.ACLBootstrapped() {
		t.Fatal("bootstrapped from the start")
	}
	if err := applyACL(t, f, 1, ACLCommand{Set: ptr(mkToken("r", "read-secret", PolicyRead))}); !errors.Is(err, ErrACLNotBootstrapped) {
		t.Fatalf("token before bootstrap: %v", err)
	}
	boot := ACLCommand{Bootstrap: &ACLBootstrap{Management: mkToken("m", "mgmt-secret", PolicyManagement), ServerSecret: bytes.Repeat([]byte{1}, 32)}}
	if err := applyACL(t, f, 2, boot); err != nil {
		t.Fatal(err)
	}
	if err := applyACL(t, f, 3, boot); !errors.Is(err, ErrACLBootstrapped) {
		t.Fatalf("second bootstrap: %v", err)
	}
	if err := applyACL(t, f, 4, ACLCommand{Set: ptr(mkToken("r", "read-secret", PolicyRead))}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []Token{mkToken("r", "other", PolicyRead), mkToken("x", "read-secret", PolicyRead), mkToken("y", "s", "root"), {Accessor: "z", Policy: PolicyRead}} {
		if err := applyACL(t, f, 5, ACLCommand{Set: &bad}); !errors.Is(err, ErrBadToken) {
			t.Fatalf("bad token %+v: %v", bad, err)
		}
	}
	if tok, ok := f.ResolveToken("read-secret"); !ok || tok.Policy != PolicyRead || tok.Accessor != "r" {
		t.Fatalf("resolve: %+v %v", tok, ok)
	}
	if _, ok := f.ResolveToken("read-secre"); ok {
		t.Fatal("a wrong secret resolved")
	}
	if err := applyACL(t, f, 6, ACLCommand{Delete: "m"}); !errors.Is(err, ErrLastManagement) {
		t.Fatalf("deleting the last management token: %v", err)
	}
	if err := applyACL(t, f, 7, ACLCommand{Delete: "nope"}); !errors.Is(err, ErrNoToken) {
		t.Fatalf("deleting an unknown token: %v", err)
	}
	if err := applyACL(t, f, 8, ACLCommand{Delete: "r"}); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.ResolveToken("read-secret"); ok {
		t.Fatal("a deleted token resolved")
	}
	if got := len(f.Tokens()); got != 1 {
		t.Fatalf("%d tokens", got)
	}
	if !bytes.Equal(f.ServerSecret(), bytes.Repeat([]byte{1}, 32)) {
		t.Fatal("server secret")
	}
}

func ptr[T any](v T) *T { return &v }

// TestExecutorBindings: an executor id is bound to the first principal
// that registers it; another is refused (a result); the binding to a token
// ends when the token is deleted.
func TestExecutorBindings(t *testing.T) {
	f := New(Options{})
	bind := func(i uint64, id, p string) error {
		return applyACL(t, f, i, ACLCommand{Bind: &ExecutorBind{Executor: id, Principal: p}})
	}
	if err := bind(1, "e1", "token:a"); !errors.Is(err, ErrACLNotBootstrapped) {
		t.Fatalf("a binding before the bootstrap: %v", err)
	}
	applyACL(t, f, 2, ACLCommand{Bootstrap: &ACLBootstrap{Management: mkToken("m", "mgmt", PolicyManagement), ServerSecret: bytes.Repeat([]byte{2}, 32)}})
	applyACL(t, f, 3, ACLCommand{Set: ptr(mkToken("a", "exe-a", PolicyExecutor))})
	applyACL(t, f, 4, ACLCommand{Set: ptr(mkToken("b", "exe-b", PolicyExecutor))})
	if err := bind(5, "e1", "token:a"); err != nil {
		t.Fatal(err)
	}
	if err := bind(6, "e1", "token:a"); err != nil {
		t.Fatalf("the same binding again: %v", err)
	}
	if err := bind(7, "e1", "token:b"); !errors.Is(err, ErrExecutorBound) {
		t.Fatalf("another token under e1: %v", err)
	}
	if err := bind(8, "", "token:b"); !errors.Is(err, ErrBadToken) {
		t.Fatalf("an empty id: %v", err)
	}
	applyACL(t, f, 9, ACLCommand{Delete: "a"})
	if _, ok := f.ExecutorOwner("e1"); ok {
		t.Fatal("the binding outlived its token")
	}
	if err := bind(10, "e1", "token:b"); err != nil {
		t.Fatalf("e1 after its token was deleted: %v", err)
	}
}

// TestACLSurvivesSnapshotAndBackup: snapshots round-trip the ACL system
// byte-identically, and a backup carries it.
func TestACLSurvivesSnapshotAndBackup(t *testing.T) {
	f := New(Options{})
	applyACL(t, f, 1, ACLCommand{Bootstrap: &ACLBootstrap{Management: mkToken("m", "mgmt", PolicyManagement), ServerSecret: bytes.Repeat([]byte{2}, 32)}})
	applyACL(t, f, 2, ACLCommand{Set: ptr(mkToken("s", "sub", PolicySubmit))})
	applyACL(t, f, 3, ACLCommand{Set: ptr(mkToken("e", "exe", PolicyExecutor))})
	applyACL(t, f, 4, ACLCommand{Bind: &ExecutorBind{Executor: "e2", Principal: "token:e"}})
	applyACL(t, f, 5, ACLCommand{Bind: &ExecutorBind{Executor: "e1", Principal: "cert:e1"}})
	snap := snapshotBytes(t, f)
	g := New(Options{})
	if err := g.Restore(nopCloser{bytes.NewReader(snap)}); err != nil {
		t.Fatal(err)
	}
	if again := snapshotBytes(t, g); !bytes.Equal(snap, again) {
		t.Fatal("snapshot does not round-trip byte-identically")
	}
	if tok, ok := g.ResolveToken("exe"); !ok || tok.Policy != PolicyExecutor {
		t.Fatalf("restored token: %+v %v", tok, ok)
	}
	if p, ok := g.ExecutorOwner("e2"); !ok || p != "token:e" {
		t.Fatalf("restored executor binding: %q %v", p, ok)
	}
	backup, _, err := f.Backup()
	if err != nil {
		t.Fatal(err)
	}
	if on, err := BackupHasACL(backup); err != nil || !on {
		t.Fatalf("backup has acl: %v %v", on, err)
	}
	plain, _, _ := New(Options{}).Backup()
	if on, err := BackupHasACL(plain); err != nil || on {
		t.Fatalf("plain backup has acl: %v %v", on, err)
	}
}

// TestCorruptACLEntryIsCorrupt: an ACL change that does not decode is a
// corrupt entry (the node stops), not a silent no-op.
func TestCorruptACLEntryIsCorrupt(t *testing.T) {
	data, err := EncodeACL(1, ACLCommand{Delete: "x"})
	if err != nil {
		t.Fatal(err)
	}
	d, err := Decode(data)
	if err != nil || d.ACL[0] == nil || d.ACL[0].Delete != "x" {
		t.Fatalf("decode: %+v %v", d, err)
	}
	e := &fsmpb.Entry{Time: 1, Commands: []*fsmpb.Command{{Type: fsmpb.Type_TYPE_ACL_TOKEN_SET, Payload: []byte{0xff}}}}
	b, _ := proto.Marshal(e)
	if _, err := Decode(frame(b)); !errors.Is(err, ErrCorruptEntry) {
		t.Fatalf("undecodable acl change: %v", err)
	}
}
