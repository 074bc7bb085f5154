package oidctest

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sluice-ssh/sluice/internal/sshtest"
)

// ClientID is the provider's client for Sluice; OtherClientID is a second
// client of the same provider (for audience checks). Both use
// ClientSecret.
const (
	ClientID      = "sluice"
	OtherClientID = "other"
	ClientSecret  = "sluice-test-secret"
)

// IdP is a running identity provider.
type IdP struct {
	Issuer string
	// CAFile is the PEM certificate the provider serves (self-signed, for
	// 127.0.0.1): the ca_file to trust it.
	CAFile  string
	RootCAs *x509.CertPool
}

// Start starts an identity provider that lives until t ends.
func Start(t testing.TB) *IdP {
	t.Helper()
	node := sshtest.RequireTool(t, "node")
	_, self, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(self), "..", "testdata", "idp")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "oidc-provider")); err != nil {
		msg := "oidc-provider is not installed in " + dir + " (scripts/install-test-deps.sh runs npm ci there)"
		if os.Getenv("SLUICE_INTEROP") == "require" {
			t.Fatalf("SLUICE_INTEROP=require: %s", msg)
		}
		t.Skip(msg)
	}
	tmp := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, tmp)
	cmd := exec.Command(node, filepath.Join(dir, "idp.mjs"), certFile, keyFile, ClientSecret)
	cmd.Dir = dir
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = stdin.Close()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- s
		_, _ = io.Copy(io.Discard, stdout)
	}()
	var ready struct{ Issuer string }
	select {
	case s := <-line:
		if err := json.Unmarshal([]byte(s), &ready); err != nil || ready.Issuer == "" {
			t.Fatalf("identity provider did not start: %q: %s", s, stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("identity provider did not start in 60s: %s", stderr.String())
	}
	return &IdP{Issuer: ready.Issuer, CAFile: certFile, RootCAs: pool}
}

// selfSigned writes a certificate and key for 127.0.0.1 to dir.
func selfSigned(t testing.TB, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "sluice test identity provider"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "idp.crt"), filepath.Join(dir, "idp.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// Browser signs in at the provider as a person would: it types the user
// code at the verification page, then the account name at the login form.
// It returns the last page's text, which tells success or failure.
// abort presses the verification page's "Abort" instead.
func (idp *IdP) Browser(t testing.TB, verificationURI, userCode, account string, abort bool) string {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{
		Jar:       jar,
		Timeout:   30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: idp.RootCAs}},
	}
	defer c.CloseIdleConnections()
	page := get(t, c, verificationURI)
	form := url.Values{"xsrf": {field(t, page, "xsrf")}, "user_code": {userCode}}
	if abort {
		form.Set("abort", "yes")
	} else {
		form.Set("confirm", "yes")
	}
	page = post(t, c, verificationURI, form)
	if abort {
		return page
	}
	m := regexp.MustCompile(`action="(/interaction/[^"]+/login)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no login form after the user code: %s", page)
	}
	return post(t, c, idp.Issuer+m[1], url.Values{"login": {account}})
}

func get(t testing.TB, c *http.Client, u string) string {
	t.Helper()
	resp, err := c.Get(u)
	return body(t, resp, err)
}

func post(t testing.TB, c *http.Client, u string, form url.Values) string {
	t.Helper()
	resp, err := c.PostForm(u, form)
	return body(t, resp, err)
}

func body(t testing.TB, resp *http.Response, err error) string {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// field returns the value of the named hidden input of page.
func field(t testing.TB, page, name string) string {
	t.Helper()
	m := regexp.MustCompile(`name="` + name + `" value="([^"]*)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no %s field in %s", name, page)
	}
	return m[1]
}
