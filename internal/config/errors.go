package config

import (
	"fmt"
	"strings"
)

// Error is one problem found in a configuration file.
type Error struct {
	File string // the file as named to Load or Parse
	Line int    // 1-based; 0 when the problem has no line (e.g. the file is unreadable)
	Key  string // key path such as services[ssh-in].policy.exec.allow[1]; may be empty
	Msg  string // what is wrong, lowercase
	Err  error  // underlying cause, if any (e.g. from os.ReadFile)
}

// Error formats the problem as "FILE:LINE: KEY: MSG", leaving out the parts
// that are unknown.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap returns the underlying cause, if any.
func (e *Error) Unwrap() error { return e.Err }

// Errors is every problem found in a configuration file, ordered by line.
// Load and Parse return it as their error; it is never empty when returned.
type Errors struct {
	List []*Error
}

// Error joins the problems, one per line.
func (e *Errors) Error() string {
	lines := make([]string, len(e.List))
	for i, x := range e.List {
		lines[i] = x.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the individual problems, for errors.Is and errors.As.
func (e *Errors) Unwrap() []error {
	errs := make([]error, len(e.List))
	for i, x := range e.List {
		errs[i] = x
	}
	return errs
}
