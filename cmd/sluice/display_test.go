package main

import (
	"encoding/json"
	"testing"
)

func TestCell(t *testing.T) {
	tests := []struct{ in, want string }{
		{"alice", "alice"},
		{"a b", "a b"},
		{"", ""},
		{"\x1b[2K\rroot", `\x1b[2K\rroot`},
		{"a\nb", `a\nb`},
		{"a\tb", `a\tb`},
		{`a\nb`, `a\\nb`},
		{`say "hi"`, `say "hi"`},
		{`\"`, `\\"`},
		{"\u009b31m", `\u009b31m`},
		{"\x7f", `\x7f`},
		{"evil\u202etxt.exe", `evil\u202etxt.exe`},
		{"caf\xe9", `caf\xe9`},
		{"café ☃", "café ☃"},
	}
	for _, tt := range tests {
		if got := cell(tt.in); got != tt.want {
			t.Errorf("cell(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestGraphicJSON(t *testing.T) {
	in := map[string]string{"k": "a\u009b\x7f\u202e\U0001F600\x1b\n"}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	got := graphicJSON(b)
	if want := `{"k":"a\u009b\u007f\u202e` + "\U0001F600" + `\u001b\n"}`; string(got) != want {
		t.Errorf("got %s, want %s", got, want)
	}
	var back map[string]string
	if err := json.Unmarshal(got, &back); err != nil || back["k"] != in["k"] {
		t.Errorf("round trip: got %q, %v, want %q", back["k"], err, in["k"])
	}
}
