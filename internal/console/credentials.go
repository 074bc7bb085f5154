package console

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"golang.org/x/crypto/bcrypt"
)

// File modes of the credential files: only the gateway's user reads them.
const (
	credDirMode  = 0o700
	credFileMode = 0o600
)

// tokenPrefix starts every API token, so that a leaked one is recognised
// by secret scanners and by a reader.
const tokenPrefix = "sluice_"

// tokenBytes is a token's randomness: 256 bits, beyond guessing, which is
// why an unsalted SHA-256 is enough to keep it.
const tokenBytes = 32

// Errors of authentication. What a client is told is only "unauthorized".
var (
	ErrNoToken      = errors.New("console: no such token")
	ErrTokenExpired = errors.New("console: token expired")
	ErrBadLogin     = errors.New("console: wrong operator, password or code")
	ErrExists       = errors.New("console: name already taken")
)

// nameRE is what an operator or token name may be: it appears in audit
// events and page titles.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$`)

// maxNameLen is the longest name nameRE allows.
const maxNameLen = 64

// Credentials are the console's tokens and operator accounts, kept in a
// folder of the state dir. Each call looks at the files again and parses
// one anew when it was replaced or changed since, so that `sluice
// console token` takes effect on a running gateway while a request costs
// a stat, not a parse.
type Credentials struct {
	dir string
	now func() time.Time

	mu   sync.Mutex
	used map[string]time.Time // operator and TOTP code accepted, when

	tokens    parsedFile[Token]
	operators parsedFile[Operator]
}

// parsedFile is a credentials file as last parsed, with the file's
// identity and modification then; its own lock, so that a slow parse
// does not hold up the TOTP bookkeeping.
type parsedFile[T any] struct {
	mu   sync.Mutex
	info fs.FileInfo // nil until parsed
	v    []T
}

// get returns the entries of file in dir: the parsed copy while the file
// is the same one (same inode: save renames a new file over it), of the
// same size and modification time; a missing file is empty.
func (p *parsedFile[T]) get(dir, file string) ([]T, error) {
	path := filepath.Join(dir, file)
	p.mu.Lock()
	defer p.mu.Unlock()
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		p.info, p.v = nil, nil
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	if p.info != nil && os.SameFile(p.info, fi) && p.info.Size() == fi.Size() && p.info.ModTime().Equal(fi.ModTime()) {
		return slices.Clone(p.v), nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	var v []T
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("console: %s: %w", path, err)
	}
	p.info, p.v = fi, v
	return slices.Clone(v), nil
}

// codeReuseWindow is how long an accepted TOTP code is remembered: its
// validity with the skew allowed (three 30 s steps).
const codeReuseWindow = 90 * time.Second

// NewCredentials returns the credentials kept in dir (STATE_DIR/console).
func NewCredentials(dir string, now func() time.Time) *Credentials {
	if now == nil {
		now = time.Now
	}
	return &Credentials{dir: dir, now: now}
}

// Token is a stored API token: never the token itself.
type Token struct {
	Name    string    `json:"name"`
	SHA256  string    `json:"sha256"`
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
}

// Operator is a console account.
type Operator struct {
	Name         string    `json:"name"`
	PasswordHash string    `json:"password_hash"` // bcrypt
	TOTPSecret   string    `json:"totp_secret"`   // base32, RFC 6238
	Created      time.Time `json:"created"`
}

func hashToken(tok string) string {
	s := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(s[:])
}

// NewToken creates a token called name valid for ttl and returns it; only
// its hash is stored. Names are unique among unexpired tokens.
func (c *Credentials) NewToken(name string, ttl time.Duration) (string, error) {
	if !nameRE.MatchString(name) {
		return "", fmt.Errorf("console: bad token name %q: want letters, digits and _ . @ - (up to 64)", name)
	}
	if ttl <= 0 {
		return "", errors.New("console: a token needs a positive lifetime")
	}
	toks, err := c.tokens.get(c.dir, "tokens.json")
	if err != nil {
		return "", err
	}
	now := c.now()
	toks = slices.DeleteFunc(toks, func(t Token) bool { return !now.Before(t.Expires) })
	if slices.ContainsFunc(toks, func(t Token) bool { return t.Name == name }) {
		return "", fmt.Errorf("%w: token %q", ErrExists, name)
	}
	b := make([]byte, tokenBytes)
	rand.Read(b)
	tok := tokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	toks = append(toks, Token{Name: name, SHA256: hashToken(tok), Created: now.UTC(), Expires: now.Add(ttl).UTC()})
	return tok, c.save("tokens.json", toks)
}

// CheckToken returns the name of token tok: ErrNoToken when none has its
// hash, ErrTokenExpired when it has expired.
func (c *Credentials) CheckToken(tok string) (string, error) {
	toks, err := c.tokens.get(c.dir, "tokens.json")
	if err != nil {
		return "", err
	}
	h := []byte(hashToken(tok))
	var found *Token
	for i := range toks {
		if subtle.ConstantTimeCompare(h, []byte(toks[i].SHA256)) == 1 {
			found = &toks[i]
		}
	}
	switch {
	case found == nil:
		return "", ErrNoToken
	case !c.now().Before(found.Expires):
		return "", fmt.Errorf("%w: %q", ErrTokenExpired, found.Name)
	}
	return found.Name, nil
}

// NewOperator creates operator name with password and returns the TOTP
// key's otpauth:// URL (for an authenticator app) and its secret.
func (c *Credentials) NewOperator(name, password, issuer string) (url, secret string, err error) {
	if !nameRE.MatchString(name) {
		return "", "", fmt.Errorf("console: bad operator name %q: want letters, digits and _ . @ - (up to 64)", name)
	}
	if len(password) < 12 {
		return "", "", errors.New("console: the password needs at least 12 characters")
	}
	ops, err := c.operators.get(c.dir, "operators.json")
	if err != nil {
		return "", "", err
	}
	if slices.ContainsFunc(ops, func(o Operator) bool { return o.Name == name }) {
		return "", "", fmt.Errorf("%w: operator %q", ErrExists, name)
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return "", "", fmt.Errorf("console: %w", err)
	}
	key, err := totp.Generate(totp.GenerateOpts{Issuer: issuer, AccountName: name})
	if err != nil {
		return "", "", fmt.Errorf("console: %w", err)
	}
	ops = append(ops, Operator{Name: name, PasswordHash: string(hash), TOTPSecret: key.Secret(), Created: c.now().UTC()})
	return key.URL(), key.Secret(), c.save("operators.json", ops)
}

// dummyHash is compared against when the operator does not exist, so that
// a wrong name takes as long as a wrong password.
var dummyHash = func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("no such operator"), bcrypt.DefaultCost)
	return h
}()

// CheckLogin checks an operator's password and TOTP code; the error is
// ErrBadLogin whatever was wrong.
func (c *Credentials) CheckLogin(name, password, code string) error {
	ops, err := c.operators.get(c.dir, "operators.json")
	if err != nil {
		return err
	}
	i := slices.IndexFunc(ops, func(o Operator) bool { return o.Name == name })
	if i < 0 {
		bcrypt.CompareHashAndPassword(dummyHash, []byte(password))
		return ErrBadLogin
	}
	if bcrypt.CompareHashAndPassword([]byte(ops[i].PasswordHash), []byte(password)) != nil {
		return ErrBadLogin
	}
	// RFC 6238 §5.2: one 30 s step of skew either way.
	ok, err := totp.ValidateCustom(strings.TrimSpace(code), ops[i].TOTPSecret, c.now().UTC(),
		totp.ValidateOpts{Period: 30, Skew: 1, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil || !ok {
		return ErrBadLogin
	}
	// A code is good for one login: one seen in its window is refused.
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.used == nil {
		c.used = map[string]time.Time{}
	}
	now := c.now()
	for k, t := range c.used {
		if now.Sub(t) > codeReuseWindow {
			delete(c.used, k)
		}
	}
	key := name + "\x00" + strings.TrimSpace(code)
	if _, seen := c.used[key]; seen {
		return ErrBadLogin
	}
	c.used[key] = now
	return nil
}

// save writes v to file of the credentials folder, whole or not at all.
func (c *Credentials) save(file string, v any) error {
	if err := os.MkdirAll(c.dir, credDirMode); err != nil {
		return fmt.Errorf("console: %w", err)
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("console: %w", err)
	}
	tmp, err := os.CreateTemp(c.dir, file+".*")
	if err != nil {
		return fmt.Errorf("console: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("console: %w", err)
	}
	if err := tmp.Chmod(credFileMode); err != nil {
		tmp.Close()
		return fmt.Errorf("console: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("console: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(c.dir, file)); err != nil {
		return fmt.Errorf("console: %w", err)
	}
	return nil
}
