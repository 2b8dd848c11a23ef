package raftnet

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"testing"
	"time"
)

// testPKI is a certificate authority for the TLS tests, made with
// crypto/x509 alone. Its certificates mark their role with a DNS name
// ("server.test" or "client.test") and carry their name as the common
// name, a convention testIdentify reads: raftnet leaves such conventions
// to its caller.
type testPKI struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
	next int64
}

const (
	testServerRole = "server.test"
	testClientRole = "client.test"
)

func newTestPKI(t testing.TB) *testPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "raftnet test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testPKI{cert: cert, key: key, pool: pool, next: 2}
}

// issue makes a certificate of the given role ("server.test" or
// "client.test") and name, good for both ends of a connection.
func (p *testPKI) issue(t testing.TB, role, name string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(p.next),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{role},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	p.next++
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.cert, &key.PublicKey, p.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// tls is the TLS option of a node (or a forger) holding a certificate of
// this role and name: it serves and dials servers of the CA only.
func (p *testPKI) tls(t testing.TB, role, name string) *TLS {
	t.Helper()
	cert := p.issue(t, role, name)
	return &TLS{
		Server:   &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}, ClientCAs: p.pool, ClientAuth: tls.RequireAndVerifyClientCert},
		Client:   &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}, RootCAs: p.pool, ServerName: testServerRole},
		Identify: testIdentify,
	}
}

// testIdentify accepts a verified server certificate and returns its name.
func testIdentify(st tls.ConnectionState) (string, error) {
	if len(st.VerifiedChains) == 0 || len(st.VerifiedChains[0]) == 0 {
		return "", errors.New("no verified certificate")
	}
	leaf := st.VerifiedChains[0][0]
	if !slices.Contains(leaf.DNSNames, testServerRole) {
		return "", fmt.Errorf("its certificate (%s, %v) is not a server's", leaf.Subject.CommonName, leaf.DNSNames)
	}
	return leaf.Subject.CommonName, nil
}
