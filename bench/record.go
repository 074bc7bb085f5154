package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// sluiceRecorded is the path through Sluice's service with record: true
// (record.max_bytes_per_stream at its default).
const sluiceRecorded = "Sluice, recorded"

// recordedPath returns the path through the recorded service.
func (w *world) recordedPath() path {
	return path{sluiceRecorded, func(tool, cipher string) []string {
		return append(w.base(tool, cipher, w.recPort), "bench@"+w.gwHost)
	}}
}

// recording measures `ssh HOST cat FILE` of o.record bytes of random and of
// text data through Sluice with recording off and on: MiB/s, the gateway's
// CPU seconds per GiB (which a loaded machine disturbs less than the
// throughput), whether the bytes arrived intact (SHA-256; a mismatch is an
// error), and the size of the recording each download left.
func recording(w *world, o options, sluice path, res *results) error {
	ps := []path{sluice, w.recordedPath()}
	ratios := []string{}
	for _, kind := range []string{"random", "text"} {
		src := w.file(kind + ".dat")
		want, err := writeData(src, kind, o.record)
		if err != nil {
			return err
		}
		for r := range o.rounds {
			for _, p := range rotate(ps, r) {
				ends := w.recordedEnds()
				cpu0 := w.sluiceCPU()
				d, got, n, err := download(p, src)
				cpu1 := w.sluiceCPU()
				if err != nil {
					return fmt.Errorf("%s %s: %w", kind, p.name, err)
				}
				if n != o.record || got != want {
					return fmt.Errorf("%s %s: got %d bytes, sha256 %s; want %d, %s", kind, p.name, n, got, o.record, want)
				}
				res.add("exec download "+kind+" data (`cat`)", "MiB/s", true, p.name, float64(n)/(1<<20)/d.Seconds())
				res.add("Sluice CPU, exec download "+kind+" data", "CPU-s/GiB", false, p.name, (cpu1-cpu0)/(float64(n)/(1<<30)))
				if p.name == sluiceRecorded {
					size, err := w.lastRecording(ends)
					if err != nil {
						return err
					}
					res.add("recording size, "+kind+" data download", "KiB", false, p.name, float64(size)/1024)
				}
			}
		}
		os.Remove(src)
		for _, r := range res.rows {
			switch r.metric {
			case "exec download " + kind + " data (`cat`)":
				ratios = append(ratios, fmt.Sprintf("%s %.2f× throughput", kind, median(r.vals[sluiceRecorded])/median(r.vals["Sluice"])))
			case "Sluice CPU, exec download " + kind + " data":
				ratios = append(ratios, fmt.Sprintf("%.2f× CPU", median(r.vals[sluiceRecorded])/median(r.vals["Sluice"])))
			}
		}
	}
	res.notes = append(res.notes, fmt.Sprintf("exec download of %s with recording on against off: %s; every download's SHA-256 matched its file "+
		"(the recording keeps the first MiB of each stream and the size and SHA-256 of the whole)", size(o.record), strings.Join(ratios, ", ")))
	return nil
}

// writeData writes n bytes of random data, or of text (log lines that
// vary), to path and returns their SHA-256.
func writeData(path, kind string, n int64) (string, error) {
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(f, h), 1<<20)
	var src io.Reader = rand.Reader
	if kind == "text" {
		src = &logLines{}
	}
	if _, err := io.CopyN(bw, src, n); err != nil {
		return "", err
	}
	if err := bw.Flush(); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), f.Close()
}

// logLines reads as an endless sshd-like log.
type logLines struct {
	i   int
	buf bytes.Buffer
}

func (l *logLines) Read(p []byte) (int, error) {
	for l.buf.Len() < len(p) {
		l.i++
		fmt.Fprintf(&l.buf, "2026-12-06T05:%02d:%02d.%06dZ host%d sshd[%d]: Accepted publickey for user%d from 10.0.%d.%d port %d ssh2: ED25519 SHA256:%x\n",
			l.i/60%60, l.i%60, l.i*7919%1000000, l.i%17, 1000+l.i%30000, l.i%113, l.i%256, l.i*31%256, 1024+l.i%60000, l.i*2654435761)
	}
	return l.buf.Read(p)
}

// download runs `ssh HOST cat src` on p and returns its time and the
// SHA-256 and size of what arrived.
func download(p path, src string) (time.Duration, string, int64, error) {
	cmd := exec.Command("ssh", append(p.args("ssh", defaultCipher), "cat "+src)...)
	h := sha256.New()
	cw := &countWriter{w: h}
	cmd.Stdout = cw
	d, err := timed(cmd)
	return d, hex.EncodeToString(h.Sum(nil)), cw.n, err
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// recordedEnds counts the session.end events of the recorded service in
// the audit log.
func (w *world) recordedEnds() int {
	b, _ := os.ReadFile(w.file("state/audit.jsonl"))
	n := 0
	for line := range strings.Lines(string(b)) {
		if strings.Contains(line, `"session.end"`) && strings.Contains(line, `"recordings"`) {
			n++
		}
	}
	return n
}

// lastRecording waits until the recorded service has ended one more
// session than ends (its file is then closed) and returns the size of the
// newest recording.
func (w *world) lastRecording(ends int) (int64, error) {
	deadline := time.Now().Add(30 * time.Second)
	for w.recordedEnds() <= ends {
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("no session.end with its recording in %s", w.file("state/audit.jsonl"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	files, err := filepath.Glob(w.file("state/recordings/*"))
	if err != nil || len(files) == 0 {
		return 0, fmt.Errorf("no recording in %s", w.file("state/recordings"))
	}
	var newest os.FileInfo
	for _, f := range files {
		st, err := os.Stat(f)
		if err == nil && (newest == nil || st.ModTime().After(newest.ModTime())) {
			newest = st
		}
	}
	return newest.Size(), nil
}
