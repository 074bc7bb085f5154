// Package gateway is Sluice's composition root: it turns a validated
// config.Config into running services — zones, host keys, authentication,
// the audit queue, and per service a router, chainer, policy, upstream
// credentials and the SSH proxy — and owns their lifetime.
package gateway
