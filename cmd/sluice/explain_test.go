package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestExplain(t *testing.T) {
	example := filepath.Join("..", "..", "examples", "roles.yaml")
	monday := "--at=2026-12-07T10:00:00+01:00"
	for _, tc := range []struct {
		name string
		args []string
		code int
		want []string // lines stdout must hold
	}{
		{"default login", []string{"-c", example, "alice", "db1", monday}, 0,
			[]string{"PERMITTED  role dba, rule roles[dba].hosts[0], login postgres (roles[dba].logins[0])", "services[ssh-in].server_zones        permits 10.0.0.5:22"}},
		{"flags after the names", []string{"alice", "db1", "--login", "app", "-c", example, monday, "--", "psql", "-l"}, 0,
			[]string{"login app (roles[dba].logins[1])", `PERMITTED  command "psql -l": rule roles[dba].policy.exec.allow[0]`}},
		{"command denied", []string{"-c", example, "alice", "db1", monday, "--", "rm", "-rf", "/"}, 1,
			[]string{`DENIED  command "rm -rf /": rule roles[dba].policy.exec.allow`}},
		{"login outside the role", []string{"-c", example, "alice", "db1", "--login", "root", monday}, 1,
			[]string{`DENIED  rule roles[dba].logins: no role grants alice the login "root" on db1`}},
		{"host outside the role", []string{"-c", example, "alice", "web1", monday}, 1,
			[]string{"DENIED  rule roles: no role grants alice access to web1", "roles[dba].hosts                     no selector matches web1"}},
		{"outside the hours", []string{"-c", example, "alice", "db1", "--at", "2026-12-06T10:00:00+01:00"}, 1,
			[]string{"DENIED  rule roles[dba].hours: role dba grants access to db1 only mon,tue,wed,thu,fri 07:00-20:00 Europe/Berlin"}},
		{"group", []string{"-c", example, "bob", "DB2"}, 0,
			[]string{"PERMITTED  role ops, rule roles[ops].hosts[0], login root"}},
		{"unknown host", []string{"-c", example, "bob", "db*"}, 1, []string{`DENIED  rule hosts: no host "db*" in the inventory`}},
		{"unknown user", []string{"-c", example, "mallory", "db1"}, 1, []string{`DENIED  rule users: no user "mallory"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(append([]string{"explain"}, tc.args...), &stdout, &stderr)
			if code != tc.code {
				t.Errorf("exit code: got %d, want %d (stdout %q, stderr %q)", code, tc.code, stdout.String(), stderr.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(stdout.String(), w) {
					t.Errorf("stdout: got\n%s\nwant a line with %q", stdout.String(), w)
				}
			}
		})
	}
}

func TestExplainUsage(t *testing.T) {
	example := filepath.Join("..", "..", "examples", "bastion.yaml")
	for _, args := range [][]string{
		{"explain"},
		{"explain", "-c", example, "alice"},
		{"explain", "-c", example, "alice", "db1", "--bogus"},
		{"explain", "-c", example, "alice", "db1", "--at", "monday"},
		{"explain", "-c", example, "alice", "db1"}, // no roles
	} {
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != 2 || stderr.Len() == 0 {
			t.Errorf("%q: got exit %d, stderr %q; want 2 with a message", args, code, stderr.String())
		}
	}
}

func TestCheckAccessWarnings(t *testing.T) {
	dir := t.TempDir()
	data, err := os.ReadFile(filepath.Join("..", "..", "examples", "roles.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(data), "hosts: [db1]                 #", "hosts: [\"nosuch*\"]           #", 1)
	text = strings.Replace(text, "    groups: [ops]                # roles", "    groups: [opz]                # roles", 1)
	path := filepath.Join(dir, "roles.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"check", "-c", path}, &stdout, &stderr); code != 0 {
		t.Fatalf("got exit %d (%s), want 0 with warnings", code, stderr.String())
	}
	for _, want := range []string{
		path + ":28: users[bob]: warning: user bob may log in but no role names them or their groups",
		path + ":48: roles[dba].hosts: warning: role dba matches no host of the inventory",
		path + ":61: roles[ops].groups: warning: role ops matches no user: none is in groups [ops]",
	} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("got\n%s\nwant a line %q", stderr.String(), want)
		}
	}
}
