package record

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

// Tests of the asciicast v2 files that Sluice wrote before recordings
// were gzip files; replay still reads them.

func TestPlay(t *testing.T) {
	cast := `{"version":2,"width":80,"height":24}
[0.5, "o", "a"]
[1.0, "i", "x"]
[1.5, "o", "b"]
[1.5, "o", "c"]
[2.0, "r", "10x10"]
`
	var slept []time.Duration
	sleep := func(_ context.Context, d time.Duration) error {
		slept = append(slept, d)
		return nil
	}
	var out bytes.Buffer
	if err := Play(context.Background(), strings.NewReader(cast), &out, PlayOptions{Speed: 2, Sleep: sleep}); err != nil {
		t.Fatalf("Play: got %v, want nil", err)
	}
	if got := out.String(); got != "abc" {
		t.Errorf("output: got %q, want %q", got, "abc")
	}
	want := []time.Duration{250 * time.Millisecond, 500 * time.Millisecond}
	if len(slept) != len(want) || slept[0] != want[0] || slept[1] != want[1] {
		t.Errorf("sleeps: got %v, want %v", slept, want)
	}
	for _, speed := range []float64{0, -1} {
		if err := Play(context.Background(), strings.NewReader(cast), io.Discard, PlayOptions{Speed: speed, Sleep: sleep}); err == nil {
			t.Errorf("Play at speed %v: got nil, want an error", speed)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Play(ctx, strings.NewReader(cast), io.Discard, PlayOptions{Speed: 1}); !errors.Is(err, context.Canceled) {
		t.Errorf("Play with a cancelled context: got %v, want context.Canceled", err)
	}
}

func TestValidate(t *testing.T) {
	const h = `{"version":2,"width":80,"height":24}` + "\n"
	tests := []struct {
		name, in string
		ok       bool
	}{
		{"header only", h, true},
		{"events", h + `[0, "o", "x"]` + "\n" + `[0.1, "r", "80x24"]` + "\n" + `[0.1, "m", ""]`, true},
		{"extra header keys", `{"version":2,"width":1,"height":1,"timestamp":1,"env":{"TERM":"x"},"sluice_user":"u","theme":{}}` + "\n", true},
		{"empty", "", false},
		{"version 1", `{"version":1,"width":80,"height":24}` + "\n", false},
		{"version string", `{"version":"2","width":80,"height":24}` + "\n", false},
		{"no width", `{"version":2,"height":24}` + "\n", false},
		{"zero height", `{"version":2,"width":80,"height":0}` + "\n", false},
		{"fractional width", `{"version":2,"width":80.5,"height":24}` + "\n", false},
		{"env not strings", `{"version":2,"width":80,"height":24,"env":{"TERM":1}}` + "\n", false},
		{"header array", `[2]` + "\n", false},
		{"decreasing time", h + `[1, "o", "x"]` + "\n" + `[0.5, "o", "y"]`, false},
		{"negative time", h + `[-1, "o", "x"]`, false},
		{"time string", h + `["1", "o", "x"]`, false},
		{"unknown code", h + `[1, "x", "x"]`, false},
		{"data number", h + `[1, "o", 1]`, false},
		{"two elements", h + `[1, "o"]`, false},
		{"bad resize", h + `[1, "r", "80 24"]`, false},
		{"trailing data", h + `[1, "o", "x"] 1`, false},
		{"half-written last line", h + `[1, "o", "x"]` + "\n" + `[2, "o", "y`, false},
		{"blank line", h + "\n" + `[1, "o", "x"]`, false},
		{"invalid utf-8", h + "[1, \"o\", \"\xff\"]", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(strings.NewReader(tt.in))
			if (err == nil) != tt.ok {
				t.Errorf("Validate: got %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !strings.HasPrefix(err.Error(), "record: ") {
				t.Errorf("error %q: want the \"record: \" prefix", err)
			}
		})
	}
}

func FuzzValidate(f *testing.F) {
	f.Add([]byte(`{"version":2,"width":80,"height":24,"env":{"TERM":"xterm"}}` + "\n" + `[0.5, "o", "a\u001b[0m"]` + "\n" + `[1, "r", "1x1"]` + "\n"))
	f.Add([]byte(`{"version":2,"width":80,"height":24}` + "\n" + `[1e400, "o", "a"]`))
	f.Add([]byte("{}\n[]\n"))
	f.Add([]byte(`{"version":2,"width":1,"height":1}` + "\n[0,\"m\",\"\"]\n[0,\"i\",\"\\ud800\"]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		err := Validate(bytes.NewReader(data))
		perr := Play(context.Background(), bytes.NewReader(data), io.Discard, PlayOptions{Speed: 1, Sleep: noSleep})
		if (err == nil) != (perr == nil) {
			t.Errorf("Validate: %v, Play: %v; want both nil or both errors", err, perr)
		}
	})
}

func TestCastTruncated(t *testing.T) {
	const cast = `{"version":2,"width":80,"height":24}` + "\n" + `[0.5, "o", "a"]` + "\n" + `[1.0, "o", "b`
	var out bytes.Buffer
	err := Play(context.Background(), strings.NewReader(cast), &out, PlayOptions{Speed: 1, Sleep: noSleep})
	if !errors.Is(err, ErrTruncated) || out.String() != "a" {
		t.Errorf("Play: got %v and %q, want ErrTruncated after %q", err, out.String(), "a")
	}
}
