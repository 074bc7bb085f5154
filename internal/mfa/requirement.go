package mfa

import "github.com/sluice-ssh/sluice/internal/auth"

// Requirement is one service's mfa setting (services[].mfa).
type Requirement struct {
	// Service names the service, for rule names.
	Service string
	// All asks every login for a second factor (mfa.required): a key
	// marked for automation is refused.
	All bool
	// StepUp lists the requests that need a second factor
	// (mfa.required_for); a login that could make them is asked at login,
	// except with a key marked for automation, which is then refused them
	// (policy.StepUp).
	StepUp []string
}

// Off reports whether the service asks no second factor of anyone.
func (q Requirement) Off() bool { return !q.All && len(q.StepUp) == 0 }

// Decide says whether id, who passed the first method, is asked for a
// code (ask) or refused (a *auth.Refusal); hasTOTP says whether the user
// has a totp_file. It is a pure function of its arguments.
func (q Requirement) Decide(id auth.Identity, hasTOTP bool) (ask bool, err error) {
	if q.Off() {
		return false, nil
	}
	refuse := func(rule, reason string) (bool, error) {
		return false, &auth.Refusal{Method: auth.MethodKeyboardInteractive, User: id.User, Rule: rule, Reason: reason}
	}
	prefix := "services[" + q.Service + "].mfa"
	if id.Restrictions.Automation {
		if q.All {
			return refuse(prefix+".required", "a key or certificate marked for automation is never asked for a second factor, and this service requires one of every login")
		}
		// Held at each request to what needs no second factor.
		return false, nil
	}
	if !hasTOTP {
		rule := prefix + ".required_for"
		if q.All {
			rule = prefix + ".required"
		}
		return refuse(rule, "a second factor is required and user "+id.User+" has no totp_file (enrol with `sluice user totp`)")
	}
	return true, nil
}

// SecondFactor is the auth.SecondFactor of a service: it asks for t's code
// at the logins Decide asks, and refuses those Decide refuses; nil when
// the service asks nothing.
func (q Requirement) SecondFactor(t *TOTP) auth.SecondFactor {
	if q.Off() {
		return nil
	}
	return func(id auth.Identity) (auth.Challenger, error) {
		ask, err := q.Decide(id, t.Files(id.User) != "")
		if !ask || err != nil {
			return nil, err
		}
		return t, nil
	}
}
