package policy

import "testing"

func TestStepUpDecide(t *testing.T) {
	const rule = "services[s].mfa.required_for"
	s, err := NewStepUp(rule, []string{KindPty, KindShell, "subsystem:sftp"})
	if err != nil {
		t.Fatal(err)
	}
	all, err := NewStepUp(rule, []string{KindSubsystem})
	if err != nil {
		t.Fatal(err)
	}
	accept := Verdict{Accept: true, Rule: "services[s].policy.exec.allow[0]"}
	deny := Verdict{Rule: "services[s].policy.shell", Reason: "shell disabled"}
	for _, tc := range []struct {
		name  string
		s     *StepUp
		v     Verdict
		kinds []string
		want  Verdict
	}{
		{"nil step-up", nil, accept, []string{KindPty}, accept},
		{"pty needs it", s, accept, []string{KindPty}, Verdict{Rule: rule}},
		{"exec does not", s, accept, []string{KindExec}, accept},
		{"exec running sftp-server does", s, accept, []string{KindExec, "subsystem:sftp"}, Verdict{Rule: rule}},
		{"another subsystem does not", s, accept, []string{"subsystem:netconf"}, accept},
		{"subsystem names them all", all, accept, []string{"subsystem:netconf"}, Verdict{Rule: rule}},
		{"a refusal stays the policy's", s, deny, []string{KindShell}, deny},
	} {
		got := tc.s.Decide(tc.v, tc.kinds...)
		if got.Accept != tc.want.Accept || got.Rule != tc.want.Rule {
			t.Errorf("%s: got %v %q, want %v %q", tc.name, got.Accept, got.Rule, tc.want.Accept, tc.want.Rule)
		}
	}
	if s, err := NewStepUp(rule, nil); s != nil || err != nil {
		t.Errorf("no kinds: got %v, %v, want nil, nil", s, err)
	}
	for _, bad := range []string{"ptty", "subsystem:", "subsystem:a b", "", "exec:uptime"} {
		if _, err := NewStepUp(rule, []string{bad}); err == nil {
			t.Errorf("%q: got nil error, want one", bad)
		}
	}
}
