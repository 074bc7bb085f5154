package main

import (
	"fmt"
	"io"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"
)

// report prints the machine, the settings and the table of figures: the
// median over rounds for each path, and Sluice's ratios to the others (to
// Sluice without its SFTP proxy when ps has that path).
func report(out io.Writer, o options, res *results, ps []path, load0, load1 string, took time.Duration) {
	sshV, _ := exec.Command("ssh", "-V").CombinedOutput()
	fmt.Fprintf(out, "\n## Sluice benchmark, %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(out, "- machine: %d CPUs (runtime.NumCPU), %s, %s/%s, %s\n", runtime.NumCPU(), strings.TrimSpace(string(sshV)), runtime.GOOS, runtime.GOARCH, runtime.Version())
	fmt.Fprintf(out, "- load average before %s, after %s; took %s\n", load0, load1, took.Round(time.Second))
	fmt.Fprintf(out, "- bulk %s, SFTP %s, %d keystrokes, %d setups, %d×%d parallel, %d round(s)\n",
		size(o.bulk), size(o.sftp), o.keystrokes, o.setupRuns, o.parallel, o.perClient, o.rounds)
	fmt.Fprintf(out, "- kex curve25519-sha256 on every hop; setup, keystrokes and SFTP with %s; Sluice upstream.reuse %s\n", defaultCipher, o.reuse)
	if o.wan.rtt > 0 {
		rate := "unlimited"
		if o.wan.rate > 0 {
			rate = fmt.Sprintf("%.0f Mbit/s", o.wan.rate/1e6)
		}
		fmt.Fprintf(out, "- WAN: round trip %s, split at the gateway host (client—gateway and gateway—target %s each); rate %s, loss %g, MTU %d\n",
			o.wan.rtt, o.wan.rtt/2, rate, o.wan.loss, o.wan.mtu)
	} else {
		fmt.Fprintf(out, "- loopback\n")
	}
	fmt.Fprintf(out, "- cells: median over rounds, with the range (min–max) when there are several\n\n")
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = p.name
	}
	refs := []string{"direct", "ProxyJump"}
	if slices.Contains(names, sluiceUnproxied) {
		refs = append(refs, sluiceUnproxied)
	}
	fmt.Fprintf(out, "| metric | unit | %s |", strings.Join(names, " | "))
	for _, ref := range refs {
		fmt.Fprintf(out, " Sluice/%s |", strings.TrimPrefix(ref, "Sluice, "))
	}
	fmt.Fprintf(out, "\n|---|---|%s%s\n", strings.Repeat("---:|", len(names)), strings.Repeat("---|", len(refs)))
	for _, r := range res.rows {
		med := map[string]float64{}
		cells := []string{}
		for _, n := range names {
			v, ok := r.vals[n]
			if !ok {
				cells = append(cells, "")
				continue
			}
			med[n] = median(v)
			cell := num(med[n])
			if len(v) > 1 {
				cell += fmt.Sprintf(" (%s–%s)", num(slices.Min(v)), num(slices.Max(v)))
			}
			cells = append(cells, cell)
		}
		ratio := func(other string) string {
			s, ok1 := med["Sluice"]
			d, ok2 := med[other]
			if !ok1 || !ok2 || d == 0 {
				return ""
			}
			return fmt.Sprintf("%.2f×", s/d)
		}
		fmt.Fprintf(out, "| %s | %s | %s |", r.metric, r.unit, strings.Join(cells, " | "))
		for _, ref := range refs {
			fmt.Fprintf(out, " %s |", ratio(ref))
		}
		fmt.Fprintln(out)
	}
	for _, n := range res.notes {
		fmt.Fprintf(out, "\n- %s", n)
	}
	fmt.Fprintln(out)
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func num(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func size(n int64) string {
	switch {
	case n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d B", n)
}
