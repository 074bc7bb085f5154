package gateway

import "golang.org/x/crypto/ssh"

// serverAlgorithms sets the client leg's algorithms: no SHA-1 signatures and
// no CBC, but wide enough for real clients — OpenSSH picks
// chacha20-poly1305 by default, and paramiko 2.x speaks only aes*-ctr.
// Strict key exchange (the Terrapin countermeasure, OpenSSH's
// kex-strict-s-v00@openssh.com) is negotiated by x/crypto/ssh on its own.
func serverAlgorithms(cfg *ssh.ServerConfig) {
	cfg.KeyExchanges = []string{
		ssh.KeyExchangeMLKEM768X25519,
		ssh.KeyExchangeCurve25519,
		ssh.KeyExchangeECDHP256,
		ssh.KeyExchangeECDHP384,
		ssh.KeyExchangeECDHP521,
		ssh.KeyExchangeDH16SHA512,
		ssh.KeyExchangeDHGEXSHA256,
	}
	cfg.Ciphers = []string{
		ssh.CipherAES128GCM,
		ssh.CipherAES256GCM,
		ssh.CipherChaCha20Poly1305,
		ssh.CipherAES128CTR,
		ssh.CipherAES192CTR,
		ssh.CipherAES256CTR,
	}
	cfg.MACs = []string{
		ssh.HMACSHA256ETM,
		ssh.HMACSHA512ETM,
		ssh.HMACSHA256,
		ssh.HMACSHA512,
	}
	// Certificates are accepted by their underlying key's algorithm; ssh-rsa
	// (SHA-1) is left out.
	cfg.PublicKeyAuthAlgorithms = []string{
		ssh.KeyAlgoED25519, ssh.KeyAlgoSKED25519, ssh.KeyAlgoSKECDSA256,
		ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521,
		ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256,
	}
}
