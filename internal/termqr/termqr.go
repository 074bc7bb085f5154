package termqr

import (
	"fmt"
	"image/color"
	"strings"

	"github.com/boombuler/barcode/qr"
)

// quietZone is the light margin around the symbol, in modules: ISO/IEC
// 18004:2015 §9.1 asks for four.
const quietZone = 4

// Render encodes text (error correction level M, ISO/IEC 18004 §7.5.1) and
// returns it drawn as lines of text ending in "\n". Light modules are
// drawn as blocks and dark ones as blanks, for the usual light-on-dark
// terminal: on a dark-on-light one the code shows inverted, which most
// phone scanners read as well.
func Render(text string) (string, error) {
	code, err := qr.Encode(text, qr.M, qr.Auto)
	if err != nil {
		return "", fmt.Errorf("termqr: %w", err)
	}
	b := code.Bounds()
	n := b.Dx() + 2*quietZone
	light := func(x, y int) bool {
		x, y = x-quietZone, y-quietZone
		if x < 0 || y < 0 || x >= b.Dx() || y >= b.Dy() {
			return true
		}
		r, _, _, _ := color.GrayModel.Convert(code.At(b.Min.X+x, b.Min.Y+y)).RGBA()
		return r > 0x7fff
	}
	var sb strings.Builder
	for y := 0; y < n; y += 2 {
		for x := range n {
			top, bottom := light(x, y), y+1 >= n || light(x, y+1)
			switch {
			case top && bottom:
				sb.WriteRune('█')
			case top:
				sb.WriteRune('▀')
			case bottom:
				sb.WriteRune('▄')
			default:
				sb.WriteByte(' ')
			}
		}
		sb.WriteByte('\n')
	}
	return sb.String(), nil
}
