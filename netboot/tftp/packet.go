package tftp

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
)

// Opcodes (RFC 1350 §5, RFC 2347 for OACK).
const (
	OpRRQ   = 1
	OpWRQ   = 2
	OpDATA  = 3
	OpACK   = 4
	OpERROR = 5
	OpOACK  = 6
)

// Error codes (RFC 1350 appendix, RFC 2347 for 8).
const (
	ErrCodeUndefined     = 0
	ErrCodeNotFound      = 1
	ErrCodeAccess        = 2
	ErrCodeDiskFull      = 3
	ErrCodeIllegalOp     = 4
	ErrCodeUnknownTID    = 5
	ErrCodeFileExists    = 6
	ErrCodeNoSuchUser    = 7
	ErrCodeOptionRefused = 8
)

// Option names (RFC 2348, 2349, 7440).
const (
	OptBlockSize  = "blksize"
	OptTransfer   = "tsize"
	OptTimeout    = "timeout"
	OptWindowSize = "windowsize"
)

// Limits of the protocol and of this parser.
const (
	MinBlockSize     = 8     // RFC 2348
	MaxBlockSize     = 65464 // RFC 2348
	DefaultBlockSize = 512   // RFC 1350
	MaxWindowSize    = 65535 // RFC 7440
	// MaxOptions bounds the options one packet may carry; the client
	// sends four.
	MaxOptions = 16
	// MaxPacket is the largest packet: a DATA packet of MaxBlockSize.
	MaxPacket = 4 + MaxBlockSize
)

// Option is one name/value pair of a request or an OACK.
type Option struct {
	Name, Value string
}

// Packet is one decoded TFTP packet. Which fields are used depends on Op.
type Packet struct {
	Op uint16
	// RRQ and WRQ.
	Filename, Mode string
	// RRQ, WRQ and OACK, in the order they appear.
	Options []Option
	// DATA and ACK.
	Block uint16
	// DATA: the payload, a sub-slice of the parsed buffer.
	Data []byte
	// ERROR.
	ErrCode uint16
	ErrMsg  string
}

// ParsePacket decodes one datagram. The input is untrusted: strings must be
// NUL-terminated (an ERROR message's terminator may be missing, as some
// servers omit it), options come in pairs with distinct non-empty names, and
// at most MaxOptions of them.
func ParsePacket(b []byte) (Packet, error) {
	if len(b) < 2 {
		return Packet{}, fmt.Errorf("tftp: %d-byte packet: %w", len(b), ErrProtocol)
	}
	p := Packet{Op: binary.BigEndian.Uint16(b)}
	b = b[2:]
	switch p.Op {
	case OpRRQ, OpWRQ:
		strs, err := splitStrings(b)
		if err != nil {
			return p, err
		}
		if len(strs) < 2 {
			return p, fmt.Errorf("tftp: request without filename and mode: %w", ErrProtocol)
		}
		p.Filename, p.Mode = strs[0], strs[1]
		if p.Filename == "" {
			return p, fmt.Errorf("tftp: request with an empty filename: %w", ErrProtocol)
		}
		p.Options, err = pairs(strs[2:])
		return p, err
	case OpOACK:
		strs, err := splitStrings(b)
		if err != nil {
			return p, err
		}
		p.Options, err = pairs(strs)
		return p, err
	case OpDATA:
		if len(b) < 2 {
			return p, fmt.Errorf("tftp: DATA without block number: %w", ErrProtocol)
		}
		p.Block = binary.BigEndian.Uint16(b)
		p.Data = b[2:]
		if len(p.Data) > MaxBlockSize {
			return p, fmt.Errorf("tftp: DATA of %d bytes: %w", len(p.Data), ErrProtocol)
		}
		return p, nil
	case OpACK:
		if len(b) < 2 {
			return p, fmt.Errorf("tftp: ACK without block number: %w", ErrProtocol)
		}
		p.Block = binary.BigEndian.Uint16(b)
		return p, nil
	case OpERROR:
		if len(b) < 2 {
			return p, fmt.Errorf("tftp: ERROR without code: %w", ErrProtocol)
		}
		p.ErrCode = binary.BigEndian.Uint16(b)
		msg := b[2:]
		if i := bytes.IndexByte(msg, 0); i >= 0 {
			msg = msg[:i]
		}
		p.ErrMsg = string(msg)
		return p, nil
	}
	return p, fmt.Errorf("tftp: opcode %d: %w", p.Op, ErrProtocol)
}

// splitStrings splits NUL-terminated strings; the last must be terminated.
func splitStrings(b []byte) ([]string, error) {
	if len(b) == 0 {
		return nil, nil
	}
	if b[len(b)-1] != 0 {
		return nil, fmt.Errorf("tftp: string not NUL-terminated: %w", ErrProtocol)
	}
	n := bytes.Count(b, []byte{0})
	if n > 2+2*MaxOptions {
		return nil, fmt.Errorf("tftp: %d strings in one packet: %w", n, ErrProtocol)
	}
	return strings.Split(string(b[:len(b)-1]), "\x00"), nil
}

func pairs(strs []string) ([]Option, error) {
	if len(strs)%2 != 0 {
		return nil, fmt.Errorf("tftp: option %q without value: %w", strs[len(strs)-1], ErrProtocol)
	}
	if len(strs)/2 > MaxOptions {
		return nil, fmt.Errorf("tftp: %d options: %w", len(strs)/2, ErrProtocol)
	}
	var opts []Option
	for i := 0; i < len(strs); i += 2 {
		name := strings.ToLower(strs[i])
		if name == "" {
			return nil, fmt.Errorf("tftp: empty option name: %w", ErrProtocol)
		}
		for _, o := range opts {
			if o.Name == name {
				return nil, fmt.Errorf("tftp: option %q repeated: %w", name, ErrProtocol)
			}
		}
		opts = append(opts, Option{Name: name, Value: strs[i+1]})
	}
	return opts, nil
}

// Append encodes p. Strings must not contain NUL bytes (they would change
// the packet's meaning), so the caller checks user-supplied ones.
func (p Packet) Append(b []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, p.Op)
	switch p.Op {
	case OpRRQ, OpWRQ:
		b = append(append(b, p.Filename...), 0)
		b = append(append(b, p.Mode...), 0)
		fallthrough
	case OpOACK:
		for _, o := range p.Options {
			b = append(append(b, o.Name...), 0)
			b = append(append(b, o.Value...), 0)
		}
	case OpDATA:
		b = binary.BigEndian.AppendUint16(b, p.Block)
		b = append(b, p.Data...)
	case OpACK:
		b = binary.BigEndian.AppendUint16(b, p.Block)
	case OpERROR:
		b = binary.BigEndian.AppendUint16(b, p.ErrCode)
		b = append(append(b, p.ErrMsg...), 0)
	}
	return b
}

// Option returns the value of the named option and whether it is present.
func (p Packet) Option(name string) (string, bool) {
	for _, o := range p.Options {
		if o.Name == name {
			return o.Value, true
		}
	}
	return "", false
}

// parseUint decodes an option's decimal value within [lo, hi].
func parseUint(name, v string, lo, hi int64) (int64, error) {
	if v == "" || len(v) > 19 {
		return 0, fmt.Errorf("tftp: option %s=%q: %w", name, v, ErrOptions)
	}
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("tftp: option %s=%q: %w", name, v, ErrOptions)
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("tftp: option %s=%q outside %d..%d: %w", name, v, lo, hi, ErrOptions)
	}
	return n, nil
}

// ErrorText describes an error code.
func ErrorText(code uint16) string {
	switch code {
	case ErrCodeUndefined:
		return "not defined"
	case ErrCodeNotFound:
		return "file not found"
	case ErrCodeAccess:
		return "access violation"
	case ErrCodeDiskFull:
		return "disk full or allocation exceeded"
	case ErrCodeIllegalOp:
		return "illegal TFTP operation"
	case ErrCodeUnknownTID:
		return "unknown transfer ID"
	case ErrCodeFileExists:
		return "file already exists"
	case ErrCodeNoSuchUser:
		return "no such user"
	case ErrCodeOptionRefused:
		return "option negotiation refused"
	}
	return "code " + strconv.Itoa(int(code))
}

// ServerError is an ERROR packet the server sent.
type ServerError struct {
	Code uint16
	// Message is the server's text, made printable and cut to 128
	// bytes: it ends up on the console.
	Message string
}

func (e *ServerError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("tftp: server error %d (%s)", e.Code, ErrorText(e.Code))
	}
	return fmt.Sprintf("tftp: server error %d (%s): %s", e.Code, ErrorText(e.Code), e.Message)
}

// Sanitize makes untrusted text safe to print: control characters and
// non-ASCII bytes become '?', and it is cut to max bytes.
func Sanitize(s string, max int) string {
	if len(s) > max {
		s = s[:max]
	}
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			b[i] = '?'
		}
	}
	return string(b)
}
