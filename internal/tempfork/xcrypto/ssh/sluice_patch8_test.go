// Copyright 2026 The Sluice Authors. All rights reserved.
// Use of this source code is governed by a BSD-style
// license that can be found in the LICENSE file.

package ssh

// Tests for Sluice patch 8, "a repeated service request during
// authentication" (docs/xcrypto-fork.md in the Sluice repository).

import (
	"errors"
	"io"
	"testing"
)

// serviceFirst asks for service before running method, as paramiko asks
// for ssh-userauth before every authentication method.
type serviceFirst struct {
	service string
	AuthMethod
}

func (m serviceFirst) auth(session []byte, user string, p packetConn, rand io.Reader, ext map[string][]byte) (authResult, []string, error) {
	if err := p.writePacket(Marshal(&serviceRequestMsg{Service: m.service})); err != nil {
		return authFailure, nil, err
	}
	packet, err := p.readPacket()
	if err != nil {
		return authFailure, nil, err
	}
	var accept serviceAcceptMsg
	if err := Unmarshal(packet, &accept); err != nil {
		return authFailure, nil, err
	}
	return m.AuthMethod.auth(session, user, p, rand, ext)
}

// twoStepServer needs a public key, then a password.
func twoStepServer(t *testing.T) *ServerConfig {
	cfg := &ServerConfig{
		PublicKeyCallback: func(ConnMetadata, PublicKey) (*Permissions, error) {
			return nil, &PartialSuccessError{Next: ServerAuthCallbacks{
				PasswordCallback: func(_ ConnMetadata, pw []byte) (*Permissions, error) {
					if string(pw) == "second" {
						return &Permissions{}, nil
					}
					return nil, errors.New("wrong")
				},
			}}
		},
	}
	cfg.AddHostKey(testSigners["ed25519"])
	return cfg
}

func dialTwoStep(t *testing.T, second AuthMethod) error {
	c1, c2, err := netPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	defer c2.Close()
	done := make(chan error, 1)
	go func() {
		conn, _, _, err := NewServerConn(c1, twoStepServer(t))
		if conn != nil {
			conn.Close()
		}
		done <- err
	}()
	_, _, _, err = NewClientConn(c2, "", &ClientConfig{
		User:            "u",
		Auth:            []AuthMethod{PublicKeys(testSigners["rsa"]), second},
		HostKeyCallback: InsecureIgnoreHostKey(),
	})
	c2.Close()
	serr := <-done
	if err != nil {
		return err
	}
	return serr
}

func TestRepeatedServiceRequestBetweenMethods(t *testing.T) {
	if err := dialTwoStep(t, serviceFirst{serviceUserAuth, Password("second")}); err != nil {
		t.Fatalf("got %v with ssh-userauth asked again before the second method, want success", err)
	}
	if err := dialTwoStep(t, serviceFirst{"ssh-connection", Password("second")}); err == nil {
		t.Fatal("got success asking for ssh-connection before authenticating, want refused")
	}
	if err := dialTwoStep(t, serviceFirst{serviceUserAuth, Password("wrong")}); err == nil {
		t.Fatal("got success with a wrong second factor, want refused")
	}
}
