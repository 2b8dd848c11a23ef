package tlsconf

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// File names the tls commands write (as nomad tls does).
const (
	CAFile    = "baton-ca.pem"
	CAKeyFile = "baton-ca-key.pem"
)

// CertFiles returns the file names of a role's certificate: role-name.pem
// and role-name-key.pem.
func CertFiles(dir, role, name string) Files {
	base := filepath.Join(dir, role+"-"+name)
	return Files{CA: filepath.Join(dir, CAFile), Cert: base + ".pem", Key: base + "-key.pem"}
}

// WriteCA makes a CA and writes it into dir (the key readable by its owner
// only); it refuses to overwrite one.
func WriteCA(dir, name string, valid time.Duration) (certPath, keyPath string, err error) {
	certPath, keyPath = filepath.Join(dir, CAFile), filepath.Join(dir, CAKeyFile)
	for _, p := range []string{certPath, keyPath} {
		if _, err := os.Stat(p); err == nil {
			return "", "", fmt.Errorf("tlsconf: %s exists: not overwriting a CA", p)
		}
	}
	ca, err := CreateCA(name, valid)
	if err != nil {
		return "", "", err
	}
	if err := write(certPath, ca.Cert, 0o644); err != nil {
		return "", "", err
	}
	if err := write(keyPath, ca.Key, 0o600); err != nil {
		return "", "", err
	}
	return certPath, keyPath, nil
}

// WriteCert makes a certificate signed by the CA in caCert/caKey and
// writes it into dir as CertFiles names it.
func WriteCert(caCert, caKey, dir string, req CertRequest) (Files, error) {
	var ca PEM
	var err error
	if ca.Cert, err = os.ReadFile(caCert); err != nil {
		return Files{}, fmt.Errorf("tlsconf: %w", err)
	}
	if ca.Key, err = os.ReadFile(caKey); err != nil {
		return Files{}, fmt.Errorf("tlsconf: %w", err)
	}
	p, err := CreateCert(ca, req)
	if err != nil {
		return Files{}, err
	}
	f := CertFiles(dir, req.Role, req.Name)
	f.CA = caCert
	if err := write(f.Cert, p.Cert, 0o644); err != nil {
		return Files{}, err
	}
	if err := write(f.Key, p.Key, 0o600); err != nil {
		return Files{}, err
	}
	return f, nil
}

// write writes a file whole (through a temporary file and a rename, so a
// certificate being rotated is never read half-written).
func write(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return fmt.Errorf("tlsconf: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("tlsconf: %w", err)
	}
	return nil
}

// TestPKI writes a CA and one certificate per (role, name) into dir, for
// tests and local clusters; it returns the files by "role/name".
func TestPKI(dir string, certs ...CertRequest) (map[string]Files, error) {
	ca, key, err := WriteCA(dir, "Baton test CA", 24*time.Hour)
	if err != nil {
		return nil, err
	}
	out := map[string]Files{}
	for _, r := range certs {
		if r.Valid == 0 {
			r.Valid = 24 * time.Hour
		}
		f, err := WriteCert(ca, key, dir, r)
		if err != nil {
			return nil, err
		}
		out[r.Role+"/"+r.Name] = f
	}
	return out, nil
}
