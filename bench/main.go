package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// options are the command-line flags.
type options struct {
	bulk       int64    // bytes per bulk transfer
	sftp       int64    // bytes per SFTP transfer
	record     int64    // bytes per download with recording on and off
	keystrokes int      // keystrokes per path, over all rounds
	setupRuns  int      // sequential `ssh true` per path
	parallel   int      // concurrent clients for sessions/s
	perClient  int      // `ssh true` per concurrent client
	rounds     int      // rounds of bulk, keystroke and sessions/s runs
	idle       int      // idle proxied sessions; 0 skips
	ciphers    []string // bulk ciphers
	only       map[string]bool
	keep       bool
	reuse      string // upstream.reuse of the gateway's service
	user       string // the account on the target; "" is the current user
	wan        wanOptions
	sluiceBin  string // a prebuilt sluice binary; "" builds ./cmd/sluice
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == gatewayCmd {
		os.Exit(runGateway(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == relayCmd {
		os.Exit(runRelay(os.Args[2:]))
	}
	o := options{only: map[string]bool{}}
	var bulk, sftp, rec, ciphers, only string
	quick := flag.Bool("quick", false, "small sizes: 256MiB bulk, 128MiB SFTP, 256MiB recorded downloads, 200 keystrokes, 10 setups, 200 idle sessions, 1 round")
	flag.StringVar(&bulk, "bulk", "2GiB", "bytes per bulk transfer (suffixes KiB, MiB, GiB)")
	flag.StringVar(&sftp, "sftp", "1GiB", "bytes per SFTP get and put")
	flag.StringVar(&rec, "record", "1GiB", "bytes per exec download (random and text data) with recording on and off")
	flag.IntVar(&o.keystrokes, "keystrokes", 2000, "keystrokes per path")
	flag.IntVar(&o.setupRuns, "setups", 20, "sequential `ssh true` per path, for the setup p50")
	flag.IntVar(&o.parallel, "parallel", 16, "concurrent clients for sessions/s")
	flag.IntVar(&o.perClient, "per-client", 4, "`ssh true` per concurrent client")
	flag.IntVar(&o.rounds, "rounds", 2, "rounds, each in a different order of the paths")
	flag.IntVar(&o.idle, "idle", 0, "idle proxied sessions against `sluice target` (0 skips; the issue asks for 1000)")
	flag.StringVar(&ciphers, "ciphers", "aes128-gcm@openssh.com,chacha20-poly1305@openssh.com", "bulk ciphers, comma-separated")
	flag.StringVar(&only, "only", "", "run only these, comma-separated: bulk,keys,setup,sftp,record,idle")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary folder")
	flag.StringVar(&o.reuse, "reuse", "30s", "the Sluice service's upstream.reuse (0s: dial and log in upstream for every connection)")
	flag.StringVar(&o.user, "user", "", "the account to log in as on the target (default: the current user); its shell starts for every `ssh true`")
	flag.StringVar(&o.sluiceBin, "sluice", "", "run this sluice binary instead of building ./cmd/sluice (to compare builds, e.g. of x/crypto patches)")
	flag.DurationVar(&o.wan.rtt, "rtt", 0, "WAN mode (root): client, gateway host and target in network namespaces, each of the two links delaying by a quarter of this round trip each way (0: loopback); see docs/benchmarks.md")
	var rate string
	flag.StringVar(&rate, "rate", "", "WAN mode: the rate of each link and direction in Mbit/s, e.g. 1000 (default unlimited)")
	flag.Float64Var(&o.wan.loss, "loss", 0, "WAN mode: the share of packets each link drops in each direction, e.g. 0.001")
	flag.IntVar(&o.wan.mtu, "mtu", 9000, "WAN mode: the MTU of the links")
	flag.Parse()
	if rate != "" {
		mbit, err := strconv.ParseFloat(rate, 64)
		if err != nil || mbit <= 0 {
			fatalf("--rate: bad rate %q", rate)
		}
		o.wan.rate = mbit * 1e6
	}
	var err error
	if o.bulk, err = parseSize(bulk); err != nil {
		fatalf("--bulk: %v", err)
	}
	if o.sftp, err = parseSize(sftp); err != nil {
		fatalf("--sftp: %v", err)
	}
	if o.record, err = parseSize(rec); err != nil {
		fatalf("--record: %v", err)
	}
	if *quick {
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		def := func(name string, apply func()) {
			if !set[name] {
				apply()
			}
		}
		def("bulk", func() { o.bulk = 256 << 20 })
		def("sftp", func() { o.sftp = 128 << 20 })
		def("record", func() { o.record = 256 << 20 })
		def("keystrokes", func() { o.keystrokes = 200 })
		def("setups", func() { o.setupRuns = 10 })
		def("per-client", func() { o.perClient = 2 })
		def("rounds", func() { o.rounds = 1 })
		def("idle", func() { o.idle = 200 })
	}
	o.ciphers = strings.Split(ciphers, ",")
	for _, s := range strings.Split(only, ",") {
		if s != "" {
			o.only[s] = true
		}
	}
	if o.rounds < 1 {
		o.rounds = 1
	}
	if o.wan.rtt < 0 || o.wan.loss < 0 || o.wan.loss >= 1 || o.wan.mtu < 1280 {
		fatalf("--rtt, --loss or --mtu out of range")
	}
	if o.wan.rtt > 0 {
		if len(o.only) == 0 {
			o.only = map[string]bool{"bulk": true, "sftp": true, "keys": true}
		}
		if o.only["idle"] || o.only["record"] {
			fatalf("--rtt: idle and record run on loopback only")
		}
		if os.Getenv(wanEnv) == "" {
			// The parent: build the path and run again inside it.
			if err := runWAN(o.wan); err != nil {
				fatalf("%v", err)
			}
			return
		}
	}
	if o.want("idle") && o.idle > 0 {
		// Idle sessions hold sockets and pipes in this program, the
		// gateway and the targets, which inherit the limit.
		if err := raiseFileLimit(); err != nil {
			fatalf("--idle %d: %v", o.idle, err)
		}
	}
	if err := run(o); err != nil {
		fatalf("%v", err)
	}
}

// raiseFileLimit raises the soft open-file limit to the hard one.
func raiseFileLimit() error {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return err
	}
	l.Cur = l.Max
	return syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
}

func (o options) want(part string) bool { return len(o.only) == 0 || o.only[part] }

func fatalf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", a...)
	os.Exit(1)
}

// parseSize reads "256MiB", "2GiB", "65536".
func parseSize(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.m
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}
