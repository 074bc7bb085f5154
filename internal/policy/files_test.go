package policy

import "testing"

func TestMatchTree(t *testing.T) {
	matches := []struct {
		glob, path string
		want       bool
	}{
		{"/srv/pub", "/srv/pub", true},
		{"/srv/pub", "/srv/pub/a/b", true},
		{"/srv/pub", "/srv/public", false},
		{"/srv/pub", "/srv", false},
		{"/home/*/.ssh", "/home/u/.ssh/authorized_keys", true},
		{"*.key", "/a/b.key", false},
		{"/*", "/anything/below", true},
	}
	for _, tc := range matches {
		if got := matchTree(tc.glob, tc.path); got != tc.want {
			t.Errorf("matchTree(%q, %q): got %v, want %v", tc.glob, tc.path, got, tc.want)
		}
	}
}

func TestRulesContains(t *testing.T) {
	rl := NewFileRules("svc", Files{DenyPaths: []string{"/export/*/.ssh", "/srv/secret"}})
	tests := []struct {
		path string
		rule string // "" when accepted
	}{
		{"/export/alice", "deny_paths[0]"},
		{"/export", "deny_paths[0]"},
		{"/", "deny_paths[0]"},
		{"/export/alice/.ssh", ""}, // the denied path itself: FileRules.Path's to refuse
		{"/export/alice/docs", ""},
		{"/export/pub/file.txt", ""},
		{"/srv", "deny_paths[1]"},
		{"/srv/public", ""},
		{"/elsewhere", ""},
	}
	for _, tc := range tests {
		v := rl.Contains(tc.path)
		want := "services[svc].policy.subsystems.sftp"
		if tc.rule != "" {
			want += "." + tc.rule
		}
		if v.Accept != (tc.rule == "") || v.Rule != want {
			t.Errorf("Contains(%q): got %v %s, want rule %s", tc.path, v.Accept, v.Rule, want)
		}
	}
}

func TestClassifyAndDecideTransferExec(t *testing.T) {
	classify := []struct{ cmd, want string }{
		{"scp -t /tmp", TransferSCP},
		{"scp -f file", TransferSCP},
		{"/usr/bin/scp -v -r -p -t -- /dst", TransferSCP},
		{"scp -prf x", TransferSCP},
		{"cd /x && exec 'scp' -t .", TransferSCP},
		{`sc""p -t .`, TransferSCP},
		{`s\cp -f x`, TransferSCP},
		{"sh -c 'scp -t .'", TransferSCP},
		{"/usr/lib/openssh/sftp-server", TransferSFTPServer},
		{"sftp-server -R", TransferSFTPServer},
		{"internal-sftp", TransferSFTPServer},
		{"env X=1 /usr/libexec/sftp-server", TransferSFTPServer},
		{"true; /usr/lib/openssh/'sftp-server'", TransferSFTPServer},
		{"rsync --server -vlogDtpre.iLsfxCIvu . /dst", TransferRsync},
		{"sudo rsync --server --sender -v . /src", TransferRsync},
		{"/usr/lib/openssh/sftp-serve[r]", TransferUnknown},
		{"sftp -s '/usr/lib/openssh/sftp-serve[r]'", ""}, // an sftp client on the target, not a server
		{"s=sftp-server; /usr/lib/openssh/$s", TransferUnknown},
		{"$(echo scp) -t .", TransferUnknown},
		{"eval \"$x\"", TransferUnknown},
		{"bash -s", TransferUnknown},
		{"ls '", TransferUnknown},
		{"scp", ""},
		{"scp file host:", ""},
		{"echo scp", ""},
		{"echo sftp-server", ""},
		{"ls -ft", ""},
		{"rsync -a /a /b", ""},
		{"cat /etc/passwd", ""},
	}
	for _, tc := range classify {
		if got, why := ClassifyTransferExec(tc.cmd); got != tc.want {
			t.Errorf("ClassifyTransferExec(%q): got %q (%s), want %q", tc.cmd, got, why, tc.want)
		}
	}
	open := Files{AllowUpload: true, AllowDownload: true, AllowRemove: true, AllowRename: true, AllowMkdir: true, AllowSymlink: true, AllowSetstat: true}
	ro := open
	ro.ReadOnly = true
	denied := open
	denied.DenyPaths = []string{"/etc"}
	decide := []struct {
		name   string
		sftp   *Files
		cmd    string
		ok     bool
		accept bool
		rule   string
	}{
		{"not a transfer", &ro, "ls", false, false, ""},
		{"permissive", &open, "scp -t /x", true, true, "services[s].policy.subsystems.sftp"},
		{"read only", &ro, "scp -t /x", true, false, "services[s].policy.subsystems.sftp.read_only"},
		{"deny paths", &denied, "/usr/lib/openssh/sftp-server", true, false, "services[s].policy.subsystems.sftp.deny_paths"},
		{"no sftp", nil, "scp -f /x", true, false, "services[s].policy.subsystems"},
		{"rsync read only", &ro, "rsync --server . /x", true, false, "services[s].policy.subsystems.sftp.read_only"},
		{"unknown restrictive", &denied, "$prog", true, false, "services[s].policy.subsystems.sftp.deny_paths"},
		{"unknown permissive", &open, "$prog", true, true, "services[s].policy.subsystems.sftp"},
	}
	for _, tc := range decide {
		v, ok := DecideTransferExec("s", tc.sftp, tc.cmd)
		if ok != tc.ok || v.Accept != tc.accept || v.Rule != tc.rule {
			t.Errorf("%s: got %v %+v, want ok %v accept %v rule %q", tc.name, ok, v, tc.ok, tc.accept, tc.rule)
		}
	}
}
