package oidc

import (
	"fmt"
	"strings"

	"github.com/boombuler/barcode/qr"
)

// quietZone is the light border around the code, in modules; ISO/IEC
// 18004 asks for 4, phone scanners read 2 and it saves terminal lines.
const quietZone = 2

// TerminalQR draws text as a QR code with Unicode half blocks, two module
// rows per line, light modules drawn as blocks: it reads on a terminal
// with a dark background, the usual one.
func TerminalQR(text string) (string, error) {
	code, err := qr.Encode(text, qr.L, qr.Auto)
	if err != nil {
		return "", fmt.Errorf("oidc: QR code: %w", err)
	}
	b := code.Bounds()
	light := func(x, y int) bool {
		if x < 0 || y < 0 || x >= b.Dx() || y >= b.Dy() {
			return true
		}
		r, _, _, _ := code.At(b.Min.X+x, b.Min.Y+y).RGBA()
		return r > 0x7fff
	}
	var sb strings.Builder
	for y := -quietZone; y < b.Dy()+quietZone; y += 2 {
		for x := -quietZone; x < b.Dx()+quietZone; x++ {
			switch top, bottom := light(x, y), light(x, y+1); {
			case top && bottom:
				sb.WriteString("█")
			case top:
				sb.WriteString("▀")
			case bottom:
				sb.WriteString("▄")
			default:
				sb.WriteString(" ")
			}
		}
		sb.WriteString("\n")
	}
	return sb.String(), nil
}
