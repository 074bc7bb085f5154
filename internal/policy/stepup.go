package policy

import (
	"fmt"
	"slices"
	"strings"
)

// Request kinds a StepUp names (services[].mfa.required_for). A
// "subsystem:NAME" kind names one subsystem; "subsystem" names them all.
const (
	KindPty           = "pty"
	KindShell         = "shell"
	KindExec          = "exec"
	KindSubsystem     = "subsystem"
	KindForwardLocal  = "forward_local"
	KindForwardRemote = "forward_remote"
	KindAgent         = "agent"
	KindX11           = "x11"
)

// Kinds are the request kinds a StepUp accepts, besides "subsystem:NAME".
var Kinds = []string{KindPty, KindShell, KindExec, KindSubsystem, KindForwardLocal, KindForwardRemote, KindAgent, KindX11}

// StepUp is the set of requests a session may make only once its user has
// given a second factor. A nil *StepUp requires none.
type StepUp struct {
	rule  string
	kinds []string
}

// CheckKind says what is wrong with a required_for entry, or "".
func CheckKind(k string) string {
	if name, ok := strings.CutPrefix(k, KindSubsystem+":"); ok {
		if name == "" || strings.ContainsAny(name, " \t") {
			return fmt.Sprintf("bad subsystem name in %q", k)
		}
		return ""
	}
	if !slices.Contains(Kinds, k) {
		return fmt.Sprintf("unknown request kind %q: want one of %s, or subsystem:NAME", k, strings.Join(Kinds, ", "))
	}
	return ""
}

// NewStepUp returns the StepUp of kinds, whose verdicts name rule (e.g.
// "services[ssh-in].mfa.required_for"); nil when kinds is empty.
func NewStepUp(rule string, kinds []string) (*StepUp, error) {
	for _, k := range kinds {
		if msg := CheckKind(k); msg != "" {
			return nil, fmt.Errorf("policy: %s: %s", rule, msg)
		}
	}
	if len(kinds) == 0 {
		return nil, nil
	}
	return &StepUp{rule: rule, kinds: slices.Clone(kinds)}, nil
}

// Decide returns v unchanged unless v accepts a request of one of kinds
// that s reserves to sessions with a second factor: that request is
// refused by s's rule. kinds describe one request, e.g. KindExec and
// "subsystem:sftp" for an exec that runs an SFTP server. Decide is safe
// on a nil s.
func (s *StepUp) Decide(v Verdict, kinds ...string) Verdict {
	if s == nil || !v.Accept {
		return v
	}
	for _, k := range kinds {
		for _, r := range s.kinds {
			if r == k || r == KindSubsystem && strings.HasPrefix(k, KindSubsystem+":") {
				return Verdict{Rule: s.rule, Reason: k + " needs a second factor, which this session has not given (a key or certificate marked for automation)"}
			}
		}
	}
	return v
}
