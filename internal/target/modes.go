package target

import (
	"golang.org/x/sys/unix"

	"github.com/sluice-ssh/sluice/sshsession"
)

// Terminal mode opcodes, RFC 4254 §8 (and RFC 8160 for IUTF8).
const (
	opVINTR    = 1
	opVQUIT    = 2
	opVERASE   = 3
	opVKILL    = 4
	opVEOF     = 5
	opVEOL     = 6
	opVEOL2    = 7
	opVSTART   = 8
	opVSTOP    = 9
	opVSUSP    = 10
	opVREPRINT = 12
	opVWERASE  = 13
	opVLNEXT   = 14
	opVDISCARD = 18
	opIGNPAR   = 30
	opPARMRK   = 31
	opINPCK    = 32
	opISTRIP   = 33
	opINLCR    = 34
	opIGNCR    = 35
	opICRNL    = 36
	opIUCLC    = 37
	opIXON     = 38
	opIXANY    = 39
	opIXOFF    = 40
	opIMAXBEL  = 41
	opIUTF8    = 42
	opISIG     = 50
	opICANON   = 51
	opXCASE    = 52
	opECHO     = 53
	opECHOE    = 54
	opECHOK    = 55
	opECHONL   = 56
	opNOFLSH   = 57
	opTOSTOP   = 58
	opIEXTEN   = 59
	opECHOCTL  = 60
	opECHOKE   = 61
	opPENDIN   = 62
	opOPOST    = 70
	opOLCUC    = 71
	opONLCR    = 72
	opOCRNL    = 73
	opONOCR    = 74
	opONLRET   = 75
	opCS7      = 90
	opCS8      = 91
	opPARENB   = 92
	opPARODD   = 93
)

// applyModes sets the terminal modes of a pty-req on tio. Opcodes this
// platform has no equivalent for (VDSUSP, VSTATUS, the speeds, ...) are
// ignored, as OpenSSH's sshd does (ttymodes.c).
func applyModes(tio *unix.Termios, modes []sshsession.Mode) {
	for _, m := range modes {
		if cc, ok := controlChar(m.Opcode); ok {
			tio.Cc[cc] = uint8(m.Value)
			continue
		}
		if m.Opcode == opCS7 || m.Opcode == opCS8 {
			// A character size is a field, not a bit: CS8 includes CS7's bit.
			if m.Value != 0 {
				size := uint32(unix.CS7)
				if m.Opcode == opCS8 {
					size = unix.CS8
				}
				tio.Cflag = tio.Cflag&^unix.CSIZE | size
			}
			continue
		}
		flags, bit, ok := modeFlag(tio, m.Opcode)
		if !ok {
			continue
		}
		if m.Value != 0 {
			*flags |= bit
		} else {
			*flags &^= bit
		}
	}
}

// controlChar returns the index in Termios.Cc of a control character
// opcode.
func controlChar(op uint8) (int, bool) {
	switch op {
	case opVINTR:
		return unix.VINTR, true
	case opVQUIT:
		return unix.VQUIT, true
	case opVERASE:
		return unix.VERASE, true
	case opVKILL:
		return unix.VKILL, true
	case opVEOF:
		return unix.VEOF, true
	case opVEOL:
		return unix.VEOL, true
	case opVEOL2:
		return unix.VEOL2, true
	case opVSTART:
		return unix.VSTART, true
	case opVSTOP:
		return unix.VSTOP, true
	case opVSUSP:
		return unix.VSUSP, true
	case opVREPRINT:
		return unix.VREPRINT, true
	case opVWERASE:
		return unix.VWERASE, true
	case opVLNEXT:
		return unix.VLNEXT, true
	case opVDISCARD:
		return unix.VDISCARD, true
	}
	return 0, false
}

// modeFlag returns the flag word of tio and the bit a boolean opcode sets.
func modeFlag(tio *unix.Termios, op uint8) (*uint32, uint32, bool) {
	switch op {
	case opIGNPAR:
		return &tio.Iflag, unix.IGNPAR, true
	case opPARMRK:
		return &tio.Iflag, unix.PARMRK, true
	case opINPCK:
		return &tio.Iflag, unix.INPCK, true
	case opISTRIP:
		return &tio.Iflag, unix.ISTRIP, true
	case opINLCR:
		return &tio.Iflag, unix.INLCR, true
	case opIGNCR:
		return &tio.Iflag, unix.IGNCR, true
	case opICRNL:
		return &tio.Iflag, unix.ICRNL, true
	case opIUCLC:
		return &tio.Iflag, unix.IUCLC, true
	case opIXON:
		return &tio.Iflag, unix.IXON, true
	case opIXANY:
		return &tio.Iflag, unix.IXANY, true
	case opIXOFF:
		return &tio.Iflag, unix.IXOFF, true
	case opIMAXBEL:
		return &tio.Iflag, unix.IMAXBEL, true
	case opIUTF8:
		return &tio.Iflag, unix.IUTF8, true
	case opISIG:
		return &tio.Lflag, unix.ISIG, true
	case opICANON:
		return &tio.Lflag, unix.ICANON, true
	case opXCASE:
		return &tio.Lflag, unix.XCASE, true
	case opECHO:
		return &tio.Lflag, unix.ECHO, true
	case opECHOE:
		return &tio.Lflag, unix.ECHOE, true
	case opECHOK:
		return &tio.Lflag, unix.ECHOK, true
	case opECHONL:
		return &tio.Lflag, unix.ECHONL, true
	case opNOFLSH:
		return &tio.Lflag, unix.NOFLSH, true
	case opTOSTOP:
		return &tio.Lflag, unix.TOSTOP, true
	case opIEXTEN:
		return &tio.Lflag, unix.IEXTEN, true
	case opECHOCTL:
		return &tio.Lflag, unix.ECHOCTL, true
	case opECHOKE:
		return &tio.Lflag, unix.ECHOKE, true
	case opPENDIN:
		return &tio.Lflag, unix.PENDIN, true
	case opOPOST:
		return &tio.Oflag, unix.OPOST, true
	case opOLCUC:
		return &tio.Oflag, unix.OLCUC, true
	case opONLCR:
		return &tio.Oflag, unix.ONLCR, true
	case opOCRNL:
		return &tio.Oflag, unix.OCRNL, true
	case opONOCR:
		return &tio.Oflag, unix.ONOCR, true
	case opONLRET:
		return &tio.Oflag, unix.ONLRET, true
	case opPARENB:
		return &tio.Cflag, unix.PARENB, true
	case opPARODD:
		return &tio.Cflag, unix.PARODD, true
	}
	return nil, 0, false
}
