package termqr

import (
	"image/color"
	"strings"
	"testing"

	"github.com/boombuler/barcode/qr"
)

// TestRenderDrawsTheSymbol reads the drawing back, module by module, and
// compares it with the encoder's symbol and its quiet zone.
func TestRenderDrawsTheSymbol(t *testing.T) {
	const text = "otpauth://totp/Sluice:alice?secret=JBSWY3DPEHPK3PXP&issuer=Sluice"
	got, err := Render(text)
	if err != nil {
		t.Fatal(err)
	}
	code, err := qr.Encode(text, qr.M, qr.Auto)
	if err != nil {
		t.Fatal(err)
	}
	size := code.Bounds().Dx()
	n := size + 2*quietZone
	lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	if want := (n + 1) / 2; len(lines) != want {
		t.Fatalf("got %d lines, want %d", len(lines), want)
	}
	for row, line := range lines {
		cells := []rune(line)
		if len(cells) != n {
			t.Fatalf("line %d: got %d cells, want %d", row, len(cells), n)
		}
		for x, c := range cells {
			for half, y := range []int{2 * row, 2*row + 1} {
				want := true
				mx, my := x-quietZone, y-quietZone
				if mx >= 0 && my >= 0 && mx < size && my < size {
					want = color.GrayModel.Convert(code.At(mx, my)).(color.Gray).Y > 0x7f
				}
				drawn := c == '█' || (half == 0 && c == '▀') || (half == 1 && c == '▄')
				if y < n && drawn != want {
					t.Fatalf("module (%d,%d): got light=%v, want %v", x, y, drawn, want)
				}
			}
		}
	}
}

func TestRenderRefusesWhatDoesNotFit(t *testing.T) {
	if _, err := Render(strings.Repeat("x", 5000)); err == nil {
		t.Error("got nil error for 5000 bytes, more than a QR code holds; want one")
	}
}
