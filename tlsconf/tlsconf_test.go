package tlsconf

import (
	"crypto/tls"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

// handshake runs a TLS handshake between a server and a client config and
// returns the identity each saw of the other.
func handshake(t *testing.T, srv, cli *tls.Config) (Peer, error) {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srv)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan Peer, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- Peer{}
			return
		}
		defer c.Close()
		tc := c.(*tls.Conn)
		if tc.Handshake() != nil {
			got <- Peer{}
			return
		}
		p, _ := PeerOf(tc.ConnectionState())
		got <- p
		io.Copy(io.Discard, c)
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), cli)
	if err != nil {
		<-got
		return Peer{}, err
	}
	defer c.Close()
	c.Write([]byte("x"))
	return <-got, nil
}

func TestRolesAndVerification(t *testing.T) {
	dir := t.TempDir()
	files, err := TestPKI(dir, CertRequest{Role: RoleServer, Name: "s1"}, CertRequest{Role: RoleExecutor, Name: "e1"}, CertRequest{Role: RoleClient, Name: "ops"})
	if err != nil {
		t.Fatal(err)
	}
	load := func(k string) *Config {
		c, err := Load(files[k])
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	srv, exe, cli := load("server/s1"), load("executor/e1"), load("client/ops")
	if srv.Role != RoleServer || srv.Name != "s1" || exe.Role != RoleExecutor || cli.Name != "ops" {
		t.Fatalf("identities: %+v %+v %+v", srv, exe, cli)
	}
	// A client dialing a server: both verified, the server sees the role.
	p, err := handshake(t, srv.Server(true), cli.Client(RoleServer))
	if err != nil || p != (Peer{Role: RoleClient, Name: "ops"}) {
		t.Fatalf("client to server: %v %+v", err, p)
	}
	// Dialing an executor while expecting a server fails: the role is checked.
	if _, err := handshake(t, exe.Server(true), cli.Client(RoleServer)); err == nil || !strings.Contains(err.Error(), "server.baton") {
		t.Fatalf("executor answering as a server: %v", err)
	}
	// A certificate from another CA is refused.
	other, err := TestPKI(t.TempDir(), CertRequest{Role: RoleClient, Name: "mallory"})
	if err != nil {
		t.Fatal(err)
	}
	mal, err := Load(other["client/mallory"])
	if err != nil {
		t.Fatal(err)
	}
	if p, err := handshake(t, srv.Server(true), mal.Client(RoleServer)); err == nil && p.Name != "" {
		t.Fatalf("a foreign CA's certificate was accepted as %+v", p)
	}
	// Without verify-incoming, a peer without a certificate connects (and
	// has no identity).
	anon := &tls.Config{RootCAs: srv.Pool(), ServerName: RoleName(RoleServer)}
	if p, err := handshake(t, srv.Server(false), anon); err != nil || p != (Peer{}) {
		t.Fatalf("anonymous client: %v %+v", err, p)
	}
	if p, _ := handshake(t, srv.Server(true), anon); p != (Peer{}) {
		t.Fatal("verify-incoming let a peer without a certificate in")
	}
}

func TestRotationIsPickedUp(t *testing.T) {
	dir := t.TempDir()
	files, err := TestPKI(dir, CertRequest{Role: RoleServer, Name: "s1"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := Load(files["server/s1"])
	if err != nil {
		t.Fatal(err)
	}
	first, _ := c.certificate()
	// A new certificate for the same holder, written in place.
	if _, err := WriteCert(files["server/s1"].CA, dir+"/"+CAKeyFile, dir, CertRequest{Role: RoleServer, Name: "s1", Valid: time.Hour}); err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(time.Minute)
	os.Chtimes(files["server/s1"].Cert, future, future)
	c.mu.Lock()
	c.checked = time.Time{}
	c.mu.Unlock()
	second, _ := c.certificate()
	if first.Leaf.SerialNumber.Cmp(second.Leaf.SerialNumber) == 0 {
		t.Fatal("the rotated certificate was not read")
	}
}

func TestLoadErrors(t *testing.T) {
	if _, err := Load(Files{CA: "x"}); err == nil || !strings.Contains(err.Error(), "a certificate file, a key file") {
		t.Fatalf("missing files: %v", err)
	}
}
