package sftpproxy

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sluice-ssh/sluice/internal/policy"
	"github.com/sluice-ssh/sluice/internal/session"
)

// stubServer answers what BenchmarkRelay sends: VERSION, a NAME for
// REALPATH, a HANDLE for OPEN and STATUS OK for everything else.
func stubServer(s pipeStream) { countingStubServer(s, nil) }

// countingStubServer is stubServer that counts the REALPATH requests it
// answers in realpaths, when not nil. A REALPATH is answered with its own
// path made absolute under /home, as a server without links would.
func countingStubServer(s pipeStream, realpaths *atomic.Int64) {
	defer s.w.Close()
	buf := make([]byte, 0, maxPacket+4)
	for {
		pkt, b, err := readPacket(s, buf)
		buf = b
		if err != nil {
			return
		}
		var reply []byte
		if pkt[4] == fxpInit {
			reply = version{version: 3}.marshal(fxpVersion)
		} else {
			q, err := parseRequest(pkt[4:])
			if err != nil {
				return
			}
			switch q.typ {
			case fxpRealpath:
				if realpaths != nil {
					realpaths.Add(1)
				}
				p, _ := absPath("/home", q.path)
				reply = packet(fxpName, q.id, appendU32(nil, 1), str(p), str(p), appendU32(nil, 0))
			case fxpOpen:
				reply = packet(fxpHandle, q.id, str("h"))
			default:
				reply = statusPacket(q.id, fxOK, "")
			}
		}
		if _, err := s.Write(reply); err != nil {
			return
		}
	}
}

// BenchmarkRelay measures an upload through the proxy: pipelined 32 KiB
// WRITE packets, each decided, hashed (unless content_hash is off) and
// answered.
func BenchmarkRelay(b *testing.B) {
	b.Run("hash", func(b *testing.B) { benchmarkRelay(b, permissive()) })
	nohash := permissive()
	nohash.NoContentHash = true
	b.Run("nohash", func(b *testing.B) { benchmarkRelay(b, nohash) })
}

func benchmarkRelay(b *testing.B, pol policy.Files) {
	const chunk = 32 << 10
	clientEnd, proxyClient := pair()
	proxyUp, serverEnd := pair()
	var wg sync.WaitGroup
	wg.Go(func() { stubServer(serverEnd) })
	p := New(Params{Service: "b", Policy: pol, Audit: &sink{}, Logger: slog.New(slog.DiscardHandler)})
	m := session.NewMaster(context.Background(), session.MasterParams{Gateway: "gw1", Service: "b"})
	defer m.Destroy()
	wg.Go(func() {
		if _, _, err := p.Relay(context.Background(), m.Stack("sftp", -1), Peers{}, proxyClient, proxyUp); err != nil {
			b.Error(err)
		}
	})
	if _, err := clientEnd.Write(version{version: 3}.marshal(fxpInit)); err != nil {
		b.Fatal(err)
	}
	if _, _, err := readPacket(clientEnd, nil); err != nil {
		b.Fatal(err)
	}
	if _, err := clientEnd.Write(packet(fxpOpen, 0, str("f"), appendU32(nil, fxfWrite|fxfCreat|fxfTrunc), appendU32(nil, 0))); err != nil {
		b.Fatal(err)
	}
	if _, _, err := readPacket(clientEnd, nil); err != nil {
		b.Fatal(err)
	}
	// Responses are drained as they come, as a pipelining client does.
	wg.Go(func() { _, _ = io.Copy(io.Discard, clientEnd.r) })
	write := packet(fxpWrite, 1, str("h"), u64(0), str(string(make([]byte, chunk))))
	var id uint32
	b.SetBytes(chunk)
	b.ReportAllocs()
	for b.Loop() {
		// Ids and offsets advance as in a real upload: no duplicates in
		// flight, and the content hash, when on, stays on.
		id++
		binary.BigEndian.PutUint32(write[5:], id)
		binary.BigEndian.PutUint64(write[4+1+4+4+1:], uint64(id-1)*chunk)
		if _, err := clientEnd.Write(write); err != nil {
			b.Fatal(err)
		}
	}
	clientEnd.w.Close()
	wg.Wait()
}

// BenchmarkRelayPathOps measures what deciding paths where the server
// will act costs: one OPEN and CLOSE of a file, as each file of a get or
// put begins and ends, answered by a stub server at once, without path
// rules and with them (each path then resolved through the server).
// roundtrips/op is the proxy's own REALPATH requests per OPEN: the round
// trips to the server it adds.
func BenchmarkRelayPathOps(b *testing.B) {
	b.Run("norules", func(b *testing.B) { benchmarkPathOps(b, permissive()) })
	rules := permissive()
	rules.DenyPaths = []string{"/home/*/.ssh"}
	b.Run("rules", func(b *testing.B) { benchmarkPathOps(b, rules) })
}

func benchmarkPathOps(b *testing.B, pol policy.Files) {
	clientEnd, proxyClient := pair()
	proxyUp, serverEnd := pair()
	var realpaths atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() { countingStubServer(serverEnd, &realpaths) })
	p := New(Params{Service: "b", Policy: pol, Audit: &sink{}, Logger: slog.New(slog.DiscardHandler)})
	m := session.NewMaster(context.Background(), session.MasterParams{Gateway: "gw1", Service: "b"})
	defer m.Destroy()
	wg.Go(func() {
		if _, _, err := p.Relay(context.Background(), m.Stack("sftp", -1), Peers{}, proxyClient, proxyUp); err != nil {
			b.Error(err)
		}
	})
	if _, err := clientEnd.Write(version{version: 3}.marshal(fxpInit)); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 0, 4096)
	var err error
	if _, buf, err = readPacket(clientEnd, buf); err != nil {
		b.Fatal(err)
	}
	open := packet(fxpOpen, 1, str("/home/u/file"), appendU32(nil, fxfRead), appendU32(nil, 0))
	closeH := packet(fxpClose, 2, str("h"))
	start := realpaths.Load()
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		// One file at a time, as sftp's get and put: each answer awaited.
		for _, req := range [][]byte{open, closeH} {
			if _, err := clientEnd.Write(req); err != nil {
				b.Fatal(err)
			}
			if _, buf, err = readPacket(clientEnd, buf); err != nil {
				b.Fatal(err)
			}
		}
		n++
	}
	b.ReportMetric(float64(realpaths.Load()-start)/float64(n), "roundtrips/op")
	clientEnd.w.Close()
	wg.Wait()
}
