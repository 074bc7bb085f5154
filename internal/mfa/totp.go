package mfa

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"golang.org/x/crypto/ssh"

	"github.com/sluice-ssh/sluice/internal/auth"
)

// Code parameters of the secrets Enrol writes: those every authenticator
// app supports (RFC 6238 §4 and §5.2: 30 s steps, HMAC-SHA-1, 6 digits).
const (
	period = 30
	digits = otp.DigitsSix
)

// skew is how many time steps either side of the current one a code may
// come from, for clock drift and the time it takes to type (RFC 6238
// §5.2 recommends at most one).
const skew = 1

// maxSecretFile bounds a totp_file: an otpauth:// URI is far shorter.
const maxSecretFile = 4096

// Prompt is the question the client is asked.
const Prompt = "Verification code: "

// Reasons a code is refused, as audited.
var (
	ErrNoCode    = errors.New("no code given")
	ErrMalformed = errors.New("malformed code")
	ErrWrongCode = errors.New("wrong code")
	ErrReused    = errors.New("code already used (or older than the last one accepted)")
)

// Enrol creates a TOTP secret for account and writes it to path as an
// otpauth:// URI, readable and writable by its owner only (0600), in a
// folder created 0700 if missing. It refuses to replace an existing file
// unless replace is set. The key it returns carries the URI to show.
func Enrol(path, issuer, account string, replace bool) (*otp.Key, error) {
	key, err := totp.Generate(totp.GenerateOpts{Issuer: issuer, AccountName: account, Period: period, Digits: digits, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		return nil, fmt.Errorf("mfa: %w", err)
	}
	if !replace {
		if _, err := os.Lstat(path); err == nil {
			return nil, fmt.Errorf("mfa: %s exists already; --force replaces it", path)
		}
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("mfa: %w", err)
	}
	f, err := os.CreateTemp(dir, ".totp-*")
	if err != nil {
		return nil, fmt.Errorf("mfa: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString(key.URL() + "\n"); err != nil {
		f.Close()
		return nil, fmt.Errorf("mfa: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("mfa: %w", err)
	}
	// CreateTemp makes the file 0600 already.
	if err := os.Rename(f.Name(), path); err != nil {
		return nil, fmt.Errorf("mfa: %w", err)
	}
	return key, nil
}

// ReadSecret reads a totp_file. A file that others than its owner may
// read or write is refused, as sshd's StrictModes refuses such an
// authorized_keys file: its secret is no longer the user's alone.
func ReadSecret(path string) (*otp.Key, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("mfa: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("mfa: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("mfa: %s is not a regular file", path)
	}
	if m := st.Mode().Perm(); m&0o077 != 0 {
		return nil, fmt.Errorf("mfa: %s is open to others (mode %#o): chmod 600 it", path, m)
	}
	buf := make([]byte, maxSecretFile+1)
	n, _ := f.Read(buf)
	if n > maxSecretFile {
		return nil, fmt.Errorf("mfa: %s is longer than %d bytes", path, maxSecretFile)
	}
	return ParseSecret(string(buf[:n]))
}

// ParseSecret parses the otpauth://totp/ URI of a totp_file.
func ParseSecret(s string) (*otp.Key, error) {
	key, err := otp.NewKeyFromURL(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("mfa: %w", err)
	}
	if key.Type() != "totp" {
		return nil, fmt.Errorf("mfa: want an otpauth://totp/ URI, got type %q", key.Type())
	}
	if key.Secret() == "" {
		return nil, errors.New("mfa: the URI has no secret")
	}
	if _, err := code(key, 0); err != nil {
		return nil, err
	}
	return key, nil
}

// code is key's code for time step counter.
func code(key *otp.Key, counter uint64) (string, error) {
	p := key.Period()
	if p == 0 {
		p = period
	}
	d := key.Digits()
	if d == 0 {
		d = digits
	}
	c, err := totp.GenerateCodeCustom(key.Secret(), time.Unix(int64(counter*p), 0), totp.ValidateOpts{Period: uint(p), Digits: d, Algorithm: key.Algorithm()})
	if err != nil {
		return "", fmt.Errorf("mfa: %w", err)
	}
	return c, nil
}

// Verifier checks TOTP codes and remembers, per user, the time step of the
// last code it accepted: in the process (NewVerifier), or in a Ledger that
// every gateway of a fleet shares (NewSharedVerifier). It is safe for
// concurrent use; one Verifier serves every connection of a gateway,
// across reloads.
type Verifier struct {
	now    func() time.Time
	ledger Ledger // nil: last is the memory

	mu   sync.Mutex
	last map[string]uint64 // user -> time step of the last accepted code
}

// Ledger is the memory of accepted codes kept outside the process, so that
// a code accepted by one gateway is refused by the others and after a
// restart.
type Ledger interface {
	// Accept records step as the time step of the last code accepted for
	// user, unless a code of that step or a later one was accepted
	// already: then it records nothing and returns false. The decision is
	// atomic across every gateway sharing the ledger. The record is
	// needed until expires (when the step's codes are no longer valid)
	// and may be forgotten after.
	Accept(ctx context.Context, user string, step uint64, expires time.Time) (bool, error)
}

// ledgerTimeout bounds one Ledger.Accept: a login waits that long at most
// for the store before its code is refused.
const ledgerTimeout = 5 * time.Second

// ErrLedger is the reason a code is refused when the Ledger did not answer:
// the code may be a replay, so it is not accepted.
var ErrLedger = errors.New("the store of used codes did not answer")

// NewVerifier returns a Verifier reading the time from now (nil means
// time.Now) that remembers accepted codes in the process.
func NewVerifier(now func() time.Time) *Verifier {
	if now == nil {
		now = time.Now
	}
	return &Verifier{now: now, last: make(map[string]uint64)}
}

// NewSharedVerifier returns a Verifier reading the time from now (nil means
// time.Now) that remembers accepted codes in ledger.
func NewSharedVerifier(now func() time.Time, ledger Ledger) *Verifier {
	v := NewVerifier(now)
	v.ledger = ledger
	return v
}

// Check accepts answer, a code of user's key, at most once. It returns nil,
// or one of ErrNoCode, ErrMalformed, ErrWrongCode, ErrReused, or an
// ErrLedger wrapping the cause when the ledger did not answer.
func (v *Verifier) Check(user string, key *otp.Key, answer string) error {
	answer = strings.TrimSpace(answer)
	d := key.Digits().Length()
	if d == 0 {
		d = digits.Length()
	}
	switch {
	case answer == "":
		return ErrNoCode
	case len(answer) != d || strings.Trim(answer, "0123456789") != "":
		return ErrMalformed
	}
	p := key.Period()
	if p == 0 {
		p = period
	}
	now := uint64(v.now().Unix()) / p
	matched, found := uint64(0), false
	// Every candidate step is computed and compared, whichever matches,
	// so the time taken does not say which one did.
	for c := now - skew; c <= now+skew; c++ {
		want, err := code(key, c)
		if err != nil {
			return err
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(answer)) == 1 && !found {
			matched, found = c, true
		}
	}
	if !found {
		return ErrWrongCode
	}
	if v.ledger != nil {
		ctx, cancel := context.WithTimeout(context.Background(), ledgerTimeout)
		defer cancel()
		expires := time.Unix(int64((matched+skew+1)*p), 0)
		ok, err := v.ledger.Accept(ctx, user, matched, expires)
		switch {
		case err != nil:
			return fmt.Errorf("%w: %w", ErrLedger, err)
		case !ok:
			return ErrReused
		}
		return nil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if last, ok := v.last[user]; ok && matched <= last {
		return ErrReused
	}
	v.last[user] = matched
	return nil
}

// TOTP asks for a TOTP code through keyboard-interactive; it is an
// auth.Challenger.
type TOTP struct {
	// Files gives the totp_file of a user, or "" when the user has none.
	Files    func(user string) string
	Verifier *Verifier
}

var _ auth.Challenger = (*TOTP)(nil)

// Name is "totp".
func (t *TOTP) Name() string { return "totp" }

// Challenge asks one question, Prompt, without echo, and checks the answer.
// The user's file is read at each login, so a new enrolment needs no
// reload.
func (t *TOTP) Challenge(_ ssh.ConnMetadata, id auth.Identity, ask ssh.KeyboardInteractiveChallenge) error {
	path := t.Files(id.User)
	rule := "users[" + id.User + "].totp_file"
	refuse := func(reason string) error {
		return &auth.Refusal{Method: auth.MethodKeyboardInteractive, User: id.User, Rule: rule, Reason: reason}
	}
	if path == "" {
		return refuse("no totp_file")
	}
	key, err := ReadSecret(path)
	if err != nil {
		// Asking nothing would tell the client the factor is broken;
		// the refusal is the same either way.
		return refuse(err.Error())
	}
	answers, err := ask("", "", []string{Prompt}, []bool{false})
	if err != nil {
		return refuse("no answer: " + err.Error())
	}
	if len(answers) != 1 {
		return refuse(ErrNoCode.Error())
	}
	if err := t.Verifier.Check(id.User, key, answers[0]); err != nil {
		return refuse(err.Error())
	}
	return nil
}
