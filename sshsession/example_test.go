package sshsession_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"

	"github.com/sluice-ssh/sluice/sshsession"
	"golang.org/x/crypto/ssh"
)

// echo answers exec requests by printing the command back.
type echo struct{}

func (echo) HandleRequest(s *sshsession.Session, r sshsession.Request) error {
	if _, ok := r.(*sshsession.ExecRequest); !ok {
		return errors.New("only exec")
	}
	return nil
}

func (echo) Serve(s *sshsession.Session) {
	fmt.Fprintf(s, "you ran %q\n", s.Program().(*sshsession.ExecRequest).Command)
	s.Exit(3)
}

func Example() {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	hostKey, _ := ssh.NewSignerFromKey(key)
	config := &ssh.ServerConfig{NoClientAuth: true}
	config.AddHostKey(hostKey)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	served := make(chan error, 1)
	go func() {
		nc, err := ln.Accept()
		ln.Close()
		if err != nil {
			served <- err
			return
		}
		conn, chans, reqs, err := ssh.NewServerConn(nc, config)
		if err != nil {
			served <- err
			return
		}
		defer conn.Close()
		served <- sshsession.ServeConn(context.Background(), conn, chans, reqs,
			func(*ssh.ServerConn) sshsession.Handler { return echo{} }, nil)
	}()

	client, err := ssh.Dial("tcp", ln.Addr().String(), &ssh.ClientConfig{
		User:            "demo",
		HostKeyCallback: ssh.FixedHostKey(hostKey.PublicKey()),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	sess, err := client.NewSession()
	if err != nil {
		fmt.Println(err)
		return
	}
	out, err := sess.Output("uptime")
	fmt.Print(string(out))
	fmt.Println(err)
	client.Close()
	fmt.Println(<-served)
	// Output:
	// you ran "uptime"
	// Process exited with status 3
	// <nil>
}
