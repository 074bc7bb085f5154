// Package termqr draws a QR code (ISO/IEC 18004) in a terminal with Unicode
// half blocks, two modules a character cell, so that a phone can scan a
// secret or a URL straight off the screen: `sluice user totp` shows the
// otpauth:// URI of a new TOTP secret this way. The encoding is
// github.com/boombuler/barcode's; this package only draws it.
package termqr
