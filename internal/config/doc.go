// Package config decodes and validates Sluice's YAML configuration file.
//
// Decoding is strict: the file is parsed into a yaml.Node tree and walked by
// hand, so that unknown keys, wrong types, bad values and dangling references
// are all reported at once, each as "FILE:LINE: key.path: what is wrong".
// Load and Parse return the decoded *Config or an *Errors holding every
// problem found.
//
// Defaults are applied after decoding; each one is documented in
// docs/config.md together with its source (most mirror OpenSSH's sshd_config
// defaults). Relative paths in the file are resolved against the folder that
// holds the file. A service without a policy section permits nothing.
//
// The package does no I/O beyond reading the file itself: it never opens the
// key, known_hosts or state files it names.
package config
