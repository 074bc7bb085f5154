package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, that it returns either a
// config or a non-empty *Errors, and that every error names the file.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob("../../examples/*.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(minimal))
	f.Add([]byte("a: &a [x, x]\nb: &b [*a, *a]\nservices: *b\n"))
	f.Add([]byte("gateway: {name: gw}\nservices: [{name: s, policy: {exec: {allow: ['(']}}}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("f.yaml", data)
		if err == nil {
			if c == nil {
				t.Fatal("Parse: got nil config and nil error, want one of them")
			}
			return
		}
		errs, ok := errors.AsType[*Errors](err)
		if !ok || len(errs.List) == 0 {
			t.Fatalf("Parse: got error %T %v, want a non-empty *Errors", err, err)
		}
		for _, e := range errs.List {
			if !strings.HasPrefix(e.Error(), "f.yaml") {
				t.Fatalf("error %q: want it to start with the file name", e)
			}
			if strings.ContainsAny(e.Error(), "\r\n") {
				t.Fatalf("error %q: want one line", e)
			}
		}
	})
}
