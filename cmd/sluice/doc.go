// Command sluice is the Sluice SSH gateway firewall.
//
// Usage:
//
//	sluice serve -c FILE        run the gateway (SIGHUP reloads, SIGTERM drains)
//	sluice check -c FILE        validate a config; print every error as FILE:LINE: key: message
//	sluice demo                 a gateway on 127.0.0.1:2222 in front of a built-in target
//	sluice target               the built-in target server alone
//	sluice known-hosts add HOST[:PORT] --known-hosts FILE
//	sluice sessions|audit|replay|kill -c FILE ...
//	sluice sessions|audit|replay|kill --server URL --token T ...   the same through a gateway's console
//	sluice audit verify -c FILE  check the audit hash chains and recordings
//	sluice version
//
// main only parses flags, picks the logger, handles signals and calls the
// internal packages; see the README and docs/ for the rest.
package main
