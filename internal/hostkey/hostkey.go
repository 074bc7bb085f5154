package hostkey

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/crypto/ssh"
)

// keyFile names the file a key type is kept in, as sshd names them
// (sshd(8) FILES).
func keyFile(typ string) (string, bool) {
	switch typ {
	case "ed25519", "ecdsa", "rsa":
		return "ssh_host_" + typ + "_key", true
	}
	return "", false
}

// rsaBits is ssh-keygen's default RSA size (ssh-keygen(1) -b).
const rsaBits = 3072

// LoadOrGenerate returns the gateway's host keys, one per type in types
// ("ed25519", "ecdsa" for NIST P-256, "rsa" for 3072 bits; nil means
// ed25519 only). A key missing from stateDir is generated and written in
// OpenSSH format with mode 0600; an existing key is reused, and refused when
// its file is readable or writable by group or others.
func LoadOrGenerate(stateDir string, types []string) ([]ssh.Signer, error) {
	if len(types) == 0 {
		types = []string{"ed25519"}
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, fmt.Errorf("hostkey: %w", err)
	}
	var signers []ssh.Signer
	seen := map[string]bool{}
	for _, typ := range types {
		name, ok := keyFile(typ)
		if !ok {
			return nil, fmt.Errorf("hostkey: unknown key type %q (want ed25519, ecdsa or rsa)", typ)
		}
		if seen[typ] {
			continue
		}
		seen[typ] = true
		s, err := LoadOrGenerateFile(filepath.Join(stateDir, name), typ)
		if err != nil {
			return nil, err
		}
		signers = append(signers, s)
	}
	return signers, nil
}

// LoadOrGenerateFile returns the OpenSSH private key at path, generating
// one of typ there (mode 0600, with path.pub beside it, written atomically)
// when there is none. An existing key readable or writable by group or
// others is refused. Besides host keys it serves for any key the gateway
// keeps for itself, such as the demo's user and upstream keys.
func LoadOrGenerateFile(path, typ string) (ssh.Signer, error) {
	if _, ok := keyFile(typ); !ok {
		return nil, fmt.Errorf("hostkey: unknown key type %q (want ed25519, ecdsa or rsa)", typ)
	}
	st, err := os.Stat(path)
	switch {
	case err == nil:
		if perm := st.Mode().Perm(); perm&0o077 != 0 {
			return nil, fmt.Errorf("hostkey: %s has mode %#o, want it private to its owner (0600)", path, perm)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("hostkey: %w", err)
		}
		s, err := ssh.ParsePrivateKey(data)
		if err != nil {
			return nil, fmt.Errorf("hostkey: %s: %w", path, err)
		}
		return s, nil
	case errors.Is(err, os.ErrNotExist):
		return generate(path, typ)
	default:
		return nil, fmt.Errorf("hostkey: %w", err)
	}
}

func generate(path, typ string) (ssh.Signer, error) {
	var priv crypto.Signer
	var err error
	switch typ {
	case "ed25519":
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case "ecdsa":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "rsa":
		priv, err = rsa.GenerateKey(rand.Reader, rsaBits)
	}
	if err != nil {
		return nil, fmt.Errorf("hostkey: generate %s: %w", typ, err)
	}
	s, err := ssh.NewSignerFromSigner(priv)
	if err != nil {
		return nil, fmt.Errorf("hostkey: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "sluice "+filepath.Base(path))
	if err != nil {
		return nil, fmt.Errorf("hostkey: %w", err)
	}
	if err := writeNew(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, err
	}
	if err := writeNew(path+".pub", ssh.MarshalAuthorizedKey(s.PublicKey()), 0o644); err != nil {
		return nil, err
	}
	return s, nil
}

// writeNew writes data to path through a temporary file and a rename, so a
// crash never leaves a half-written key behind.
func writeNew(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return fmt.Errorf("hostkey: %w", err)
	}
	defer os.Remove(f.Name()) // no-op after the rename
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("hostkey: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("hostkey: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("hostkey: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("hostkey: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("hostkey: %w", err)
	}
	return nil
}
