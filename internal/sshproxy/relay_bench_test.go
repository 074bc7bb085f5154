package sshproxy

import (
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"net"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/sluice-ssh/sluice/internal/sniff"
)

// BenchmarkRelay measures the relay's data path, Proxy.pipe, between two
// x/crypto/ssh connections on loopback: a "user" client writes into a
// channel of the gateway's client leg, pipe copies it to a channel of the
// upstream leg, and the "target" server reads it. Each op is one 32 KiB
// write (one full packet); the figure includes the four ciphers of the two
// legs (seal and open on each), as in the gateway.
//
//	go test -run '^$' -bench Relay -benchmem ./internal/sshproxy
func BenchmarkRelay(b *testing.B) {
	p := &Proxy{}
	benchRelay(b, func(client, target ssh.Channel) { p.pipe(client, target) })
}

// BenchmarkRelaySniffed is BenchmarkRelay through a direct-tcpip
// forward's relay: the first bytes held and sniffed (an unknown protocol,
// accepted), then the bulk copy. Compare the two with benchstat:
//
//	go test -run '^$' -bench 'Relay(Sniffed)?$' -count 10 -benchmem ./internal/sshproxy
func BenchmarkRelaySniffed(b *testing.B) {
	benchRelay(b, func(client, target ssh.Channel) {
		s := &sniffer{wait: sniffWait, decide: func(sniff.Result) bool { return true }}
		s.pipe(client, target)
	})
}

func benchRelay(b *testing.B, pipe func(client, target ssh.Channel)) {
	for _, cipher := range []string{ssh.CipherAES128GCM, ssh.CipherChaCha20Poly1305} {
		b.Run(cipher, func(b *testing.B) {
			// Client leg: the user's end and the gateway's end of it.
			user, gwClient := channelPair(b, cipher)
			// Upstream leg: the gateway's end and the target's.
			gwUp, target := channelPair(b, cipher)
			done := make(chan struct{})
			go func() {
				pipe(gwClient, gwUp)
				close(done)
			}()
			const chunk = 32 << 10
			go func() {
				buf := make([]byte, chunk)
				for {
					if _, err := user.Write(buf); err != nil {
						return
					}
				}
			}()
			buf := make([]byte, chunk)
			b.SetBytes(chunk)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := io.ReadFull(target, buf); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			user.Close()
			target.Close()
			<-done
		})
	}
}

// channelPair connects an x/crypto client to an x/crypto server on
// loopback with one cipher and returns both ends of one channel.
func channelPair(b testing.TB, cipher string) (client, server ssh.Channel) {
	b.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		b.Fatal(err)
	}
	scfg := &ssh.ServerConfig{NoClientAuth: true}
	scfg.Ciphers = []string{cipher}
	scfg.AddHostKey(signer)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	got := make(chan ssh.Channel, 1)
	errc := make(chan error, 1)
	go func() {
		nc, err := l.Accept()
		if err != nil {
			errc <- err
			return
		}
		sc, chans, reqs, err := ssh.NewServerConn(nc, scfg)
		if err != nil {
			errc <- err
			return
		}
		b.Cleanup(func() { sc.Close() })
		go ssh.DiscardRequests(reqs)
		newCh, ok := <-chans
		if !ok {
			errc <- io.ErrUnexpectedEOF
			return
		}
		ch, chReqs, err := newCh.Accept()
		if err != nil {
			errc <- err
			return
		}
		go ssh.DiscardRequests(chReqs)
		go func() {
			for nc := range chans {
				_ = nc.Reject(ssh.Prohibited, "one channel only")
			}
		}()
		got <- ch
	}()
	ccfg := &ssh.ClientConfig{User: "bench", HostKeyCallback: ssh.FixedHostKey(signer.PublicKey())}
	ccfg.Ciphers = []string{cipher}
	c, err := ssh.Dial("tcp", l.Addr().String(), ccfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	client, reqs, err := c.OpenChannel("session", nil)
	if err != nil {
		b.Fatal(err)
	}
	go ssh.DiscardRequests(reqs)
	select {
	case server = <-got:
	case err := <-errc:
		b.Fatal(err)
	}
	return client, server
}

// BenchmarkEcho measures the round trip of one byte, as a keystroke echoed
// by the target: "direct" between two x/crypto/ssh ends on loopback, and
// "relayed" through Proxy.pipe between two such connections. The
// difference is the latency the relay adds to each keystroke.
//
//	go test -run '^$' -bench Echo ./internal/sshproxy
func BenchmarkEcho(b *testing.B) {
	b.Run("direct", func(b *testing.B) {
		user, target := channelPair(b, ssh.CipherAES128GCM)
		echo(b, user, target)
	})
	b.Run("relayed", func(b *testing.B) {
		user, gwClient := channelPair(b, ssh.CipherAES128GCM)
		gwUp, target := channelPair(b, ssh.CipherAES128GCM)
		p := &Proxy{}
		done := make(chan struct{})
		go func() {
			p.pipe(gwClient, gwUp)
			close(done)
		}()
		echo(b, user, target)
		<-done
	})
}

// echo sends one byte at a time from user to target, which writes it back,
// and closes both when the benchmark ends.
func echo(b *testing.B, user, target ssh.Channel) {
	go func() {
		buf := make([]byte, 1)
		for {
			if _, err := target.Read(buf); err != nil {
				return
			}
			if _, err := target.Write(buf); err != nil {
				return
			}
		}
	}()
	buf := make([]byte, 1)
	for b.Loop() {
		if _, err := user.Write(buf); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(user, buf); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	user.Close()
	target.Close()
}
