package xenstore

import (
	"encoding/binary"
	"fmt"
	"strconv"

	"github.com/gopvgrub/gopvgrub/xen"
)

// MsgType is xsd_sockmsg.type (io/xs_wire.h enum xsd_sockmsg_type).
type MsgType uint32

// Message types.
const (
	TypeControl           MsgType = 0
	TypeDirectory         MsgType = 1
	TypeRead              MsgType = 2
	TypeGetPerms          MsgType = 3
	TypeWatch             MsgType = 4
	TypeUnwatch           MsgType = 5
	TypeTransactionStart  MsgType = 6
	TypeTransactionEnd    MsgType = 7
	TypeIntroduce         MsgType = 8
	TypeRelease           MsgType = 9
	TypeGetDomainPath     MsgType = 10
	TypeWrite             MsgType = 11
	TypeMkdir             MsgType = 12
	TypeRm                MsgType = 13
	TypeSetPerms          MsgType = 14
	TypeWatchEvent        MsgType = 15
	TypeError             MsgType = 16
	TypeIsDomainIntroduce MsgType = 17
	TypeResume            MsgType = 18
	TypeSetTarget         MsgType = 19
	// 20 was XS_RESTRICT, removed.
	TypeResetWatches  MsgType = 21
	TypeDirectoryPart MsgType = 22
	TypeInvalid       MsgType = 0xffff
)

func (t MsgType) String() string {
	switch t {
	case TypeControl:
		return "CONTROL"
	case TypeDirectory:
		return "DIRECTORY"
	case TypeRead:
		return "READ"
	case TypeGetPerms:
		return "GET_PERMS"
	case TypeWatch:
		return "WATCH"
	case TypeUnwatch:
		return "UNWATCH"
	case TypeTransactionStart:
		return "TRANSACTION_START"
	case TypeTransactionEnd:
		return "TRANSACTION_END"
	case TypeIntroduce:
		return "INTRODUCE"
	case TypeRelease:
		return "RELEASE"
	case TypeGetDomainPath:
		return "GET_DOMAIN_PATH"
	case TypeWrite:
		return "WRITE"
	case TypeMkdir:
		return "MKDIR"
	case TypeRm:
		return "RM"
	case TypeSetPerms:
		return "SET_PERMS"
	case TypeWatchEvent:
		return "WATCH_EVENT"
	case TypeError:
		return "ERROR"
	case TypeIsDomainIntroduce:
		return "IS_DOMAIN_INTRODUCED"
	case TypeResume:
		return "RESUME"
	case TypeSetTarget:
		return "SET_TARGET"
	case TypeResetWatches:
		return "RESET_WATCHES"
	case TypeDirectoryPart:
		return "DIRECTORY_PART"
	}
	return "MsgType(" + strconv.FormatUint(uint64(t), 10) + ")"
}

// Wire limits (io/xs_wire.h).
const (
	HeaderSize = xen.XenstoreMsgHdrSize // struct xsd_sockmsg
	PayloadMax = xen.XenstorePayloadMax // XENSTORE_PAYLOAD_MAX, both directions
	AbsPathMax = xen.XenstoreAbsPathMax
	RelPathMax = xen.XenstoreRelPathMax
)

// Header is struct xsd_sockmsg.
type Header struct {
	Type  MsgType
	ReqID uint32 // echoed in the reply
	TxID  uint32 // transaction, 0 for none
	Len   uint32 // payload bytes that follow
}

// AppendHeader appends the 16 wire bytes of h.
func AppendHeader(dst []byte, h Header) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(h.Type))
	dst = binary.LittleEndian.AppendUint32(dst, h.ReqID)
	dst = binary.LittleEndian.AppendUint32(dst, h.TxID)
	return binary.LittleEndian.AppendUint32(dst, h.Len)
}

// ParseHeader decodes a header and checks the payload limit: a longer
// payload cannot be legitimate, and following it would desynchronise the
// stream, so it is a protocol error.
func ParseHeader(b []byte) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, fmt.Errorf("xenstore: header of %d bytes: %w", len(b), ErrProtocol)
	}
	h := Header{
		Type:  MsgType(binary.LittleEndian.Uint32(b[0:])),
		ReqID: binary.LittleEndian.Uint32(b[4:]),
		TxID:  binary.LittleEndian.Uint32(b[8:]),
		Len:   binary.LittleEndian.Uint32(b[12:]),
	}
	if h.Len > PayloadMax {
		return Header{}, fmt.Errorf("xenstore: %v message with %d-byte payload (max %d): %w", h.Type, h.Len, PayloadMax, ErrProtocol)
	}
	return h, nil
}

// Message is a header and its payload.
type Message struct {
	Header
	Payload []byte
}

// Decoder reassembles messages from a byte stream that arrives in
// arbitrary pieces (a ring delivers whatever fits).
type Decoder struct {
	hdr     [HeaderSize]byte
	nhdr    int
	h       Header
	payload []byte
	npay    int
}

// Feed consumes bytes from p up to the end of the current message and
// returns how many it used and, when a message is complete, the message.
// Its payload is a fresh slice the caller keeps. After an error the
// stream cannot be resynchronised; call Reset only after the peer has
// reset too.
func (d *Decoder) Feed(p []byte) (int, *Message, error) {
	used := 0
	if d.nhdr < HeaderSize {
		n := copy(d.hdr[d.nhdr:], p)
		d.nhdr += n
		used += n
		if d.nhdr < HeaderSize {
			return used, nil, nil
		}
		h, err := ParseHeader(d.hdr[:])
		if err != nil {
			return used, nil, err
		}
		d.h = h
		d.payload = make([]byte, h.Len)
		d.npay = 0
	}
	n := copy(d.payload[d.npay:], p[used:])
	d.npay += n
	used += n
	if d.npay < len(d.payload) {
		return used, nil, nil
	}
	m := &Message{Header: d.h, Payload: d.payload}
	d.Reset()
	return used, m, nil
}

// Partial reports whether the decoder holds part of a message.
func (d *Decoder) Partial() bool { return d.nhdr > 0 }

// Reset drops any partial message.
func (d *Decoder) Reset() {
	*d = Decoder{}
}

// splitStrings splits a payload of NUL-terminated strings. An empty
// payload is an empty list; a payload not ending in NUL is malformed.
func splitStrings(p []byte) ([]string, error) {
	if len(p) == 0 {
		return nil, nil
	}
	if p[len(p)-1] != 0 {
		return nil, fmt.Errorf("xenstore: payload not NUL-terminated: %w", ErrProtocol)
	}
	var out []string
	start := 0
	for i, c := range p {
		if c == 0 {
			out = append(out, string(p[start:i]))
			start = i + 1
		}
	}
	return out, nil
}

// ParseErrorReply decodes an ERROR payload ("ENOENT\0"). The name must
// look like an errno name; anything else is a protocol error rather than
// text passed on to the user.
func ParseErrorReply(p []byte) (Errno, error) {
	s, err := splitStrings(p)
	if err != nil || len(s) != 1 {
		return "", fmt.Errorf("xenstore: malformed ERROR reply %q: %w", truncate(p), ErrProtocol)
	}
	name := s[0]
	ok := len(name) >= 2 && len(name) <= 32 && name[0] == 'E'
	for i := 1; ok && i < len(name); i++ {
		c := name[i]
		ok = c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
	}
	if !ok {
		return "", fmt.Errorf("xenstore: malformed ERROR reply %q: %w", truncate(p), ErrProtocol)
	}
	return Errno(name), nil
}

// ParseWatchEvent decodes a WATCH_EVENT payload: "<path>\0<token>\0".
func ParseWatchEvent(p []byte) (path, token string, err error) {
	s, err := splitStrings(p)
	if err != nil || len(s) != 2 || s[0] == "" {
		return "", "", fmt.Errorf("xenstore: malformed WATCH_EVENT %q: %w", truncate(p), ErrProtocol)
	}
	return s[0], s[1], nil
}

// ParseTransactionID decodes a TRANSACTION_START reply: a decimal id and
// a NUL. Id 0 means "no transaction" and cannot be one.
func ParseTransactionID(p []byte) (uint32, error) {
	s, err := splitStrings(p)
	if err == nil && len(s) == 1 {
		if id, perr := strconv.ParseUint(s[0], 10, 32); perr == nil && id != 0 {
			return uint32(id), nil
		}
	}
	return 0, fmt.Errorf("xenstore: malformed transaction id %q: %w", truncate(p), ErrProtocol)
}

// ParseDirectory decodes a DIRECTORY reply: child names, each NUL-
// terminated. Names must be non-empty and contain no '/'.
func ParseDirectory(p []byte) ([]string, error) {
	s, err := splitStrings(p)
	if err != nil {
		return nil, err
	}
	for _, name := range s {
		if name == "" || containsByte(name, '/') {
			return nil, fmt.Errorf("xenstore: malformed DIRECTORY entry %q: %w", name, ErrProtocol)
		}
	}
	return s, nil
}

func containsByte(s string, b byte) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == b {
			return true
		}
	}
	return false
}

// truncate limits hostile payloads quoted in error messages.
func truncate(p []byte) []byte {
	if len(p) > 64 {
		return p[:64]
	}
	return p
}

// Access is one domain's access to a node in a permission list.
type Access byte

// Access values, as the letters the wire uses.
const (
	AccessNone  Access = 'n'
	AccessRead  Access = 'r'
	AccessWrite Access = 'w'
	AccessBoth  Access = 'b'
)

// Perm is one entry of a node's permission list. The first entry names
// the owner (who always has full access) and the access of every domain
// not listed; the others grant access to one domain each.
type Perm struct {
	Dom    xen.DomID
	Access Access
}

func (p Perm) String() string {
	return string(rune(p.Access)) + strconv.FormatUint(uint64(p.Dom), 10)
}

// ParsePerm decodes "r5" and the like.
func ParsePerm(s string) (Perm, error) {
	if len(s) < 2 {
		return Perm{}, fmt.Errorf("xenstore: malformed permission %q: %w", s, ErrProtocol)
	}
	a := Access(s[0])
	switch a {
	case AccessNone, AccessRead, AccessWrite, AccessBoth:
	default:
		return Perm{}, fmt.Errorf("xenstore: malformed permission %q: %w", s, ErrProtocol)
	}
	d, err := strconv.ParseUint(s[1:], 10, 16)
	if err != nil {
		return Perm{}, fmt.Errorf("xenstore: malformed permission %q: %w", s, ErrProtocol)
	}
	return Perm{Dom: xen.DomID(d), Access: a}, nil
}

// ParsePerms decodes a GET_PERMS reply: one or more permissions, each
// NUL-terminated.
func ParsePerms(p []byte) ([]Perm, error) {
	s, err := splitStrings(p)
	if err != nil {
		return nil, err
	}
	if len(s) == 0 {
		return nil, fmt.Errorf("xenstore: empty permission list: %w", ErrProtocol)
	}
	out := make([]Perm, 0, len(s))
	for _, x := range s {
		pm, err := ParsePerm(x)
		if err != nil {
			return nil, err
		}
		out = append(out, pm)
	}
	return out, nil
}

// appendStrings appends each string and a NUL.
func appendStrings(dst []byte, s ...string) []byte {
	for _, x := range s {
		dst = append(dst, x...)
		dst = append(dst, 0)
	}
	return dst
}
