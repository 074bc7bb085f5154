package main

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/sluice-ssh/sluice/internal/hostkey"
	"github.com/sluice-ssh/sluice/internal/sshtest"
)

func TestTargetCommand(t *testing.T) {
	sshtest.RequireTool(t, "ssh")
	dir := t.TempDir()
	_, keyPath := sshtest.NewKey(t, dir, "client")
	ak := filepath.Join(dir, "authorized_keys")
	pub, err := os.ReadFile(keyPath + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ak, append([]byte("# the test client\n\n"), pub...), 0o600); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")

	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		code := serveTarget(ctx, "127.0.0.1:0", state, ak, pw)
		pw.Close()
		done <- code
	}()
	scanned := make(chan struct{})
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("target exit code: got %d, want 0", code)
		}
		<-scanned
	})
	addrRe := regexp.MustCompile(`"target listening" addr=127\.0\.0\.1:(\d+)`)
	portc := make(chan int, 1)
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			t.Log(sc.Text())
			if m := addrRe.FindStringSubmatch(sc.Text()); m != nil {
				p, _ := strconv.Atoi(m[1])
				portc <- p
			}
		}
	}()
	var port int
	select {
	case port = <-portc:
	case <-time.After(10 * time.Second):
		t.Fatal("target logged no listening address within 10s")
	}

	signers, err := hostkey.LoadOrGenerate(state, nil)
	if err != nil {
		t.Fatalf("host key in state dir: %v", err)
	}
	args := append(sshtest.ClientArgs(t, "ssh", port, keyPath, signers[0].PublicKey()), "anyone@127.0.0.1", "echo ok")
	out, err := exec.Command("ssh", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh: %v\n%s", err, out)
	}
	if got, want := string(out), "ok\n"; got != want {
		t.Errorf("output: got %q, want %q", got, want)
	}

	_, otherPath := sshtest.NewKey(t, dir, "other")
	args = append(sshtest.ClientArgs(t, "ssh", port, otherPath, signers[0].PublicKey()), "anyone@127.0.0.1", "echo ok")
	if out, err := exec.Command("ssh", args...).CombinedOutput(); err == nil {
		t.Errorf("ssh with an unlisted key: got success (%q), want refusal", out)
	}
}
