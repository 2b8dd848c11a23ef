package tlsconf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// Roles a certificate can name.
const (
	RoleServer   = "server"
	RoleExecutor = "executor"
	RoleClient   = "client"
)

// Domain is the DNS suffix of role names.
const Domain = "baton"

// RoleName is the DNS name that marks a certificate's role.
func RoleName(role string) string { return role + "." + Domain }

// Files name a node's CA certificate, certificate and key (PEM).
type Files struct {
	CA, Cert, Key string
}

// Enabled reports whether TLS is configured (all three files named).
func (f Files) Enabled() bool { return f.CA != "" || f.Cert != "" || f.Key != "" }

func (f Files) check() error {
	var missing []string
	if f.CA == "" {
		missing = append(missing, "a CA file")
	}
	if f.Cert == "" {
		missing = append(missing, "a certificate file")
	}
	if f.Key == "" {
		missing = append(missing, "a key file")
	}
	if len(missing) > 0 {
		return fmt.Errorf("tlsconf: TLS needs %s", strings.Join(missing, ", "))
	}
	return nil
}

// Config holds a node's TLS material. It reads the certificate and key
// again when their files change (checked at most every few seconds), so a
// rotated certificate is used for new connections without a restart.
type Config struct {
	files Files
	pool  *x509.CertPool
	// Role is the role this node's certificate names.
	Role string
	// Name is the certificate's common name.
	Name string

	mu      sync.Mutex
	cert    *tls.Certificate
	mtime   time.Time
	checked time.Time
}

// Load reads the files and checks that the certificate is signed by the
// CA and names a role.
func Load(f Files) (*Config, error) {
	if err := f.check(); err != nil {
		return nil, err
	}
	caPEM, err := os.ReadFile(f.CA)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("tlsconf: %s holds no PEM certificate", f.CA)
	}
	c := &Config{files: f, pool: pool}
	cert, err := c.load()
	if err != nil {
		return nil, err
	}
	if _, err := cert.Leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, fmt.Errorf("tlsconf: %s is not signed by the CA in %s: %w", f.Cert, f.CA, err)
	}
	role, name, ok := Identity(cert.Leaf)
	if !ok {
		return nil, fmt.Errorf("tlsconf: %s names no role (want one of %s, %s, %s in its DNS names)", f.Cert,
			RoleName(RoleServer), RoleName(RoleExecutor), RoleName(RoleClient))
	}
	c.Role, c.Name = role, name
	return c, nil
}

func (c *Config) load() (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(c.files.Cert, c.files.Key)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: certificate: %w", err)
	}
	st, err := os.Stat(c.files.Cert)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: certificate: %w", err)
	}
	c.mu.Lock()
	c.cert, c.mtime, c.checked = &cert, st.ModTime(), time.Now()
	c.mu.Unlock()
	return &cert, nil
}

// certificate returns the current certificate, read again when its file
// changed.
func (c *Config) certificate() (*tls.Certificate, error) {
	c.mu.Lock()
	cert, mtime, checked := c.cert, c.mtime, c.checked
	c.mu.Unlock()
	if time.Since(checked) < 5*time.Second {
		return cert, nil
	}
	if st, err := os.Stat(c.files.Cert); err == nil && !st.ModTime().Equal(mtime) {
		if fresh, err := c.load(); err == nil {
			return fresh, nil
		}
	}
	c.mu.Lock()
	c.checked = time.Now()
	c.mu.Unlock()
	return cert, nil
}

// Pool returns the CA pool.
func (c *Config) Pool() *x509.CertPool { return c.pool }

// Server returns the configuration of a listener. With verifyIncoming,
// peers must present a certificate from the CA (mutual TLS); without, a
// peer may connect with none (HTTP for browsers; ACL tokens then decide).
func (c *Config) Server(verifyIncoming bool) *tls.Config {
	auth := tls.VerifyClientCertIfGiven
	if verifyIncoming {
		auth = tls.RequireAndVerifyClientCert
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		ClientCAs:  c.pool,
		ClientAuth: auth,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return c.certificate()
		},
	}
}

// Client returns the configuration of a dialer to a peer of the given role:
// the peer's certificate must come from the CA and name that role.
func (c *Config) Client(peerRole string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		RootCAs:    c.pool,
		ServerName: RoleName(peerRole),
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return c.certificate()
		},
	}
}

// Identity returns the role and name a certificate names.
func Identity(cert *x509.Certificate) (role, name string, ok bool) {
	if cert == nil {
		return "", "", false
	}
	for _, d := range cert.DNSNames {
		for _, r := range []string{RoleServer, RoleExecutor, RoleClient} {
			if d == RoleName(r) {
				return r, cert.Subject.CommonName, true
			}
		}
	}
	return "", "", false
}

// Peer is who is on the other end of a connection.
type Peer struct {
	Role, Name string
}

// ErrNoPeerCert: the connection carries no verified certificate.
var ErrNoPeerCert = errors.New("tlsconf: no verified client certificate")

// PeerOf returns the verified identity of a TLS connection's peer.
func PeerOf(st tls.ConnectionState) (Peer, error) {
	if len(st.VerifiedChains) == 0 || len(st.VerifiedChains[0]) == 0 {
		return Peer{}, ErrNoPeerCert
	}
	role, name, ok := Identity(st.VerifiedChains[0][0])
	if !ok {
		return Peer{}, fmt.Errorf("tlsconf: the peer's certificate names no role")
	}
	return Peer{Role: role, Name: name}, nil
}

// PeerFromContext returns the verified identity of a gRPC call's peer;
// ok is false when the call did not come over TLS with a certificate.
func PeerFromContext(ctx context.Context) (Peer, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return Peer{}, false
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return Peer{}, false
	}
	id, err := PeerOf(ti.State)
	return id, err == nil
}
