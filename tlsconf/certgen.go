package tlsconf

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"
)

// PEM is a certificate and its private key, PEM-encoded.
type PEM struct {
	Cert, Key []byte
}

// CreateCA makes a self-signed certificate authority (ECDSA P-256) named
// name, valid for the given duration.
func CreateCA(name string, valid time.Duration) (PEM, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return PEM{}, fmt.Errorf("tlsconf: CA key: %w", err)
	}
	serial, err := serialNumber()
	if err != nil {
		return PEM{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name, Organization: []string{"Baton"}},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(valid),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return PEM{}, fmt.Errorf("tlsconf: CA certificate: %w", err)
	}
	return encode(der, key)
}

// CertRequest describes a certificate to make.
type CertRequest struct {
	// Role is RoleServer, RoleExecutor or RoleClient.
	Role string
	// Name is the holder's name: a server's node id, an executor's id, a
	// user's name.
	Name string
	// Hosts are extra DNS names and IP addresses the holder serves on
	// (servers and executors always get localhost and 127.0.0.1).
	Hosts []string
	Valid time.Duration
}

// CreateCert makes a certificate for req signed by the CA.
func CreateCert(ca PEM, req CertRequest) (PEM, error) {
	switch req.Role {
	case RoleServer, RoleExecutor, RoleClient:
	default:
		return PEM{}, fmt.Errorf("tlsconf: role %q: want %s, %s or %s", req.Role, RoleServer, RoleExecutor, RoleClient)
	}
	if req.Name == "" {
		return PEM{}, errors.New("tlsconf: a certificate needs a name")
	}
	caCert, caKey, err := parse(ca)
	if err != nil {
		return PEM{}, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return PEM{}, fmt.Errorf("tlsconf: key: %w", err)
	}
	serial, err := serialNumber()
	if err != nil {
		return PEM{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: req.Name, Organization: []string{"Baton"}, OrganizationalUnit: []string{req.Role}},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(req.Valid),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		// Servers dial each other and executors dial servers: every
		// certificate serves and is presented by clients.
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		DNSNames:    []string{RoleName(req.Role), req.Name + "." + RoleName(req.Role)},
	}
	hosts := req.Hosts
	if req.Role != RoleClient {
		hosts = append([]string{"localhost", "127.0.0.1"}, hosts...)
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return PEM{}, fmt.Errorf("tlsconf: certificate: %w", err)
	}
	return encode(der, key)
}

func serialNumber() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("tlsconf: serial number: %w", err)
	}
	return n, nil
}

func encode(der []byte, key *ecdsa.PrivateKey) (PEM, error) {
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return PEM{}, fmt.Errorf("tlsconf: key: %w", err)
	}
	return PEM{
		Cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		Key:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}),
	}, nil
}

func parse(p PEM) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	cb, _ := pem.Decode(p.Cert)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return nil, nil, errors.New("tlsconf: the CA certificate is not PEM")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("tlsconf: CA certificate: %w", err)
	}
	if !cert.IsCA {
		return nil, nil, errors.New("tlsconf: the CA certificate is not a CA")
	}
	kb, _ := pem.Decode(p.Key)
	if kb == nil {
		return nil, nil, errors.New("tlsconf: the CA key is not PEM")
	}
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("tlsconf: CA key: %w", err)
	}
	return cert, key, nil
}
