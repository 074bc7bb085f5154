package auth

import (
	"crypto/rand"
	"errors"
	"sync"
	"testing"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/ssh"
)

// pin is a Challenger that wants the answer "1234".
type pin struct{}

func (pin) Name() string { return "pin" }

func (pin) Challenge(_ ssh.ConnMetadata, id Identity, ask ssh.KeyboardInteractiveChallenge) error {
	a, err := ask("", "", []string{"PIN: "}, []bool{false})
	if err != nil {
		return err
	}
	if len(a) != 1 || a[0] != "1234" {
		return &Refusal{User: id.User, Rule: "users[" + id.User + "].pin", Reason: "wrong pin"}
	}
	return nil
}

// answers is a keyboard-interactive client that gives the next answer
// each round and counts the rounds.
type answers struct {
	mu     sync.Mutex
	list   []string
	rounds int
}

func (a *answers) method() ssh.AuthMethod {
	return ssh.RetryableAuthMethod(ssh.KeyboardInteractive(func(_, _ string, qs []string, _ []bool) ([]string, error) {
		a.mu.Lock()
		defer a.mu.Unlock()
		a.rounds++
		if len(a.list) == 0 {
			return nil, errors.New("no more answers")
		}
		ans := a.list[0]
		a.list = a.list[1:]
		out := make([]string, len(qs))
		for i := range out {
			out[i] = ans
		}
		return out, nil
	}), 10)
}

type owed struct {
	mu   sync.Mutex
	list []string
}

func (o *owed) record(id Identity, factor string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.list = append(o.list, id.User+":"+factor)
}

func (o *owed) get() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.list...)
}

// secondFactorServer starts a server whose users alice (key human) and
// alice's automation key (option "automation") log in; the human key is
// asked for a pin.
func secondFactorServer(t *testing.T, maxTries int) (s *server, human, robot ssh.Signer, f *failures, o *owed) {
	human, robot = newSigner(t), newSigner(t)
	ak := writeFile(t, t.TempDir(), "ak", authorizedLine("", human.PublicKey())+"\n"+authorizedLine("automation", robot.PublicKey())+"\n")
	a, err := New(Params{Users: []User{{Name: "alice", AuthorizedKeysFile: ak}}, MaxAuthTries: maxTries})
	if err != nil {
		t.Fatal(err)
	}
	f, o = &failures{}, &owed{}
	s = startServerLogin(t, a, Login{
		Refused: f.record,
		Owed:    o.record,
		SecondFactor: func(id Identity) (Challenger, error) {
			if id.Restrictions.Automation {
				return nil, nil
			}
			return pin{}, nil
		},
	})
	return s, human, robot, f, o
}

func TestSecondFactorAfterPublicKey(t *testing.T) {
	s, human, robot, f, o := secondFactorServer(t, 0)

	a := &answers{list: []string{"1234"}}
	id := s.login(t, "alice", ssh.PublicKeys(human), a.method()).identity(t)
	if id.SecondFactor != "pin" || id.Method != MethodPublicKey {
		t.Errorf("got method %q second factor %q, want publickey then pin", id.Method, id.SecondFactor)
	}
	if got := o.get(); len(got) != 1 || got[0] != "alice:pin" {
		t.Errorf("got owed %q, want [alice:pin]", got)
	}

	// The automation key is never asked.
	a = &answers{list: []string{"1234"}}
	id = s.login(t, "alice", ssh.PublicKeys(robot), a.method()).identity(t)
	if id.SecondFactor != "" || !id.Restrictions.Automation || a.rounds != 0 {
		t.Errorf("automation key: got second factor %q automation %v after %d rounds, want none, true, 0", id.SecondFactor, id.Restrictions.Automation, a.rounds)
	}

	// A wrong answer, then the right one, on one connection.
	a = &answers{list: []string{"0000", "1234"}}
	if id := s.login(t, "alice", ssh.PublicKeys(human), a.method()).identity(t); id.SecondFactor != "pin" {
		t.Errorf("got second factor %q after a retry, want pin", id.SecondFactor)
	}
	f.mu.Lock()
	if len(f.list) != 1 || f.list[0].Method != MethodKeyboardInteractive || f.list[0].Reason != "wrong pin" {
		t.Errorf("got refusals %+v, want one keyboard-interactive wrong pin", f.list)
	}
	f.mu.Unlock()
}

// TestCarriedSecondFactor: a login that carries the outer connection's
// second factor (a jump's inner login) takes it without being asked, and
// says so; a key marked for automation never takes it, and a login that
// carries nothing is asked as usual.
func TestCarriedSecondFactor(t *testing.T) {
	human, robot := newSigner(t), newSigner(t)
	ak := writeFile(t, t.TempDir(), "ak", authorizedLine("", human.PublicKey())+"\n"+authorizedLine("automation", robot.PublicKey())+"\n")
	a, err := New(Params{Users: []User{{Name: "alice", AuthorizedKeysFile: ak}}})
	if err != nil {
		t.Fatal(err)
	}
	asked := func(id Identity) (Challenger, error) {
		if id.Restrictions.Automation {
			return nil, nil
		}
		return pin{}, nil
	}
	for _, c := range []struct {
		name    string
		carried string
		key     ssh.Signer
		second  SecondFactor
		want    string
		carries bool
		rounds  int
	}{
		{"carried, not asked", "totp", human, asked, "totp", true, 0},
		{"carried without a SecondFactor", "totp", human, nil, "totp", true, 0},
		{"automation key takes nothing", "totp", robot, asked, "", false, 0},
		{"nothing carried, asked", "", human, asked, "pin", false, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := startServerLogin(t, a, Login{Carried: c.carried, SecondFactor: c.second})
			ans := &answers{list: []string{"1234"}}
			id := s.login(t, "alice", ssh.PublicKeys(c.key), ans.method()).identity(t)
			if id.SecondFactor != c.want || id.Carried != c.carries || ans.rounds != c.rounds {
				t.Errorf("got second factor %q carried %v after %d rounds, want %q, %v, %d", id.SecondFactor, id.Carried, ans.rounds, c.want, c.carries, c.rounds)
			}
		})
	}
}

func TestSecondFactorWithoutAnswerIsRefused(t *testing.T) {
	s, human, _, _, o := secondFactorServer(t, 0)
	// A client that has no keyboard-interactive method cannot go on
	// after the partial success.
	if r := s.login(t, "alice", ssh.PublicKeys(human)); r.err == nil {
		t.Fatal("got login without the second factor accepted, want refused")
	}
	if got := o.get(); len(got) != 1 {
		t.Errorf("got owed %q, want one", got)
	}
	// keyboard-interactive alone is no first method.
	a := &answers{list: []string{"1234"}}
	if r := s.login(t, "alice", a.method()); r.err == nil {
		t.Fatal("got keyboard-interactive alone accepted, want refused")
	}
	if a.rounds != 0 {
		t.Errorf("got %d rounds asked before any first method, want 0", a.rounds)
	}
}

func TestSecondFactorFailuresCountTowardsMaxAuthTries(t *testing.T) {
	s, human, _, f, _ := secondFactorServer(t, 3)
	a := &answers{list: []string{"1", "2", "3", "4", "1234"}}
	if r := s.login(t, "alice", ssh.PublicKeys(human), a.method()); r.err == nil {
		t.Fatal("got login accepted after 3 wrong answers with MaxAuthTries 3, want refused")
	}
	if a.rounds != 3 {
		t.Errorf("got %d rounds, want 3 (MaxAuthTries)", a.rounds)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.list) != 3 {
		t.Errorf("got %d refusals, want 3", len(f.list))
	}
}

func TestSecondFactorRefusalEndsLogin(t *testing.T) {
	key := newSigner(t)
	a, err := New(Params{Users: []User{{Name: "bob", AuthorizedKeysFile: writeFile(t, t.TempDir(), "ak", authorizedLine("", key.PublicKey()))}}})
	if err != nil {
		t.Fatal(err)
	}
	var f failures
	s := startServerLogin(t, a, Login{Refused: f.record, SecondFactor: func(id Identity) (Challenger, error) {
		return nil, &Refusal{Method: MethodKeyboardInteractive, User: id.User, Rule: "services[x].mfa.required", Reason: "no totp_file"}
	}})
	ans := &answers{list: []string{"1234"}}
	if r := s.login(t, "bob", ssh.PublicKeys(key), ans.method()); r.err == nil {
		t.Fatal("got login accepted, want refused")
	}
	if got := f.rules(); len(got) == 0 || got[0] != "services[x].mfa.required" {
		t.Errorf("got rules %q, want services[x].mfa.required", got)
	}
}

func TestAutomationCertificateExtension(t *testing.T) {
	ca, user := newSigner(t), newSigner(t)
	a, err := New(Params{Users: []User{{Name: "ci"}}, TrustedCAKeys: []ssh.PublicKey{ca.PublicKey()}})
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, a, nil)
	for _, automation := range []bool{false, true} {
		cert := &ssh.Certificate{Key: user.PublicKey(), CertType: ssh.UserCert, ValidPrincipals: []string{"ci"}, ValidBefore: ssh.CertTimeInfinity,
			Permissions: ssh.Permissions{Extensions: map[string]string{}}}
		if automation {
			cert.Extensions[ExtensionAutomation] = ""
		}
		if err := cert.SignCert(rand.Reader, ca); err != nil {
			t.Fatal(err)
		}
		cs, err := ssh.NewCertSigner(cert, user)
		if err != nil {
			t.Fatal(err)
		}
		if id := s.login(t, "ci", ssh.PublicKeys(cs)).identity(t); id.Restrictions.Automation != automation {
			t.Errorf("extension present %v: got automation %v", automation, id.Restrictions.Automation)
		}
	}
}

func TestSecondFactorAfterPassword(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Params{Users: []User{{Name: "carol", PasswordHash: string(hash)}}})
	if err != nil {
		t.Fatal(err)
	}
	s := startServerLogin(t, a, Login{SecondFactor: func(Identity) (Challenger, error) { return pin{}, nil }})
	ans := &answers{list: []string{"1234"}}
	if id := s.login(t, "carol", ssh.Password("pw"), ans.method()).identity(t); id.Method != MethodPassword || id.SecondFactor != "pin" {
		t.Errorf("got method %q second factor %q, want password then pin", id.Method, id.SecondFactor)
	}
	// A wrong password is never asked for the second factor.
	ans = &answers{list: []string{"1234"}}
	if r := s.login(t, "carol", ssh.Password("nope"), ans.method()); r.err == nil || ans.rounds != 0 {
		t.Errorf("wrong password: got %v after %d rounds, want refused unasked", r.err, ans.rounds)
	}
}

// sso is a FirstMethod that wants the answer "ok" and puts its user in
// group "sso".
type sso struct{}

func (sso) Name() string { return "sso" }

func (sso) Authenticate(_ ssh.ConnMetadata, login string, ask ssh.KeyboardInteractiveChallenge) (Identity, error) {
	a, err := ask("", "open the URL", []string{"Press Enter when done "}, []bool{true})
	if err != nil {
		return Identity{}, err
	}
	if len(a) != 1 || a[0] != "ok" {
		return Identity{}, &Refusal{User: login, Rule: "sso", Reason: "not approved"}
	}
	return Identity{User: login, Groups: []string{"sso"}}, nil
}

func TestFirstMethodThenSecondFactor(t *testing.T) {
	a, err := New(Params{Users: []User{{Name: "dave"}}})
	if err != nil {
		t.Fatal(err)
	}
	var f failures
	second := func(id Identity) (Challenger, error) {
		if id.Method == "sso" && id.User == "dave" {
			return pin{}, nil
		}
		return nil, nil
	}
	s := startServerLogin(t, a, Login{Refused: f.record, First: sso{}, SecondFactor: second})
	ans := &answers{list: []string{"ok", "1234"}}
	id := s.login(t, "dave", ans.method()).identity(t)
	if id.Method != "sso" || id.SecondFactor != "pin" || len(id.Groups) != 1 || id.Groups[0] != "sso" {
		t.Errorf("got %+v, want dave by sso in group sso, then pin", id)
	}
	ans = &answers{list: []string{"no"}}
	if r := s.login(t, "dave", ans.method()); r.err == nil {
		t.Fatal("got an unapproved first method accepted, want refused")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.list) == 0 || f.list[0].Method != MethodKeyboardInteractive || f.list[0].Rule != "sso" {
		t.Errorf("got refusals %+v, want one by rule sso", f.list)
	}
}
