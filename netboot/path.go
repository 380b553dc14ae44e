package netboot

import (
	"fmt"
	"net/netip"
	"strings"
)

// Scheme is how a Location is fetched.
type Scheme string

// Schemes.
const (
	TFTP Scheme = "tftp"
	HTTP Scheme = "http"
)

// Location is a parsed network path.
type Location struct {
	Scheme Scheme
	// Server is the server named in the path; invalid means the boot
	// server DHCP gave (PV-GRUB's (nd), grub.cfg's $net_default_server).
	Server netip.AddrPort
	// Path is what is asked of the server, as written ("/pxe/menu.lst").
	Path string
}

func (l Location) String() string {
	if l.Server.IsValid() {
		return fmt.Sprintf("(%s,%v)%s", l.Scheme, l.Server, l.Path)
	}
	return fmt.Sprintf("(%s)%s", l.Scheme, l.Path)
}

// maxPath bounds a path from a config file or DHCP.
const maxPath = 1024

// ParsePath decodes the network paths PV-GRUB and GRUB 2 configurations use:
//
//	(nd)/pxe/menu.lst           PV-GRUB: the network device, default server
//	(tftp)/path                 GRUB 2: TFTP from the default server
//	(tftp,10.0.0.2)/path        GRUB 2: TFTP from that server
//	(tftp,10.0.0.2:6969)/path   ... on another port
//	(http,10.0.0.2)/path        GRUB 2: HTTP (parsed; fetching is not implemented)
//	http://10.0.0.2/path        a URL
//	/path, path                 no device: the default server
//
// Server names must be IP addresses (there is no DNS). Any other device
// ("(hd0,0)") is ErrNotNetwork: the caller reads disks itself.
func ParsePath(s string) (Location, error) {
	if s == "" || len(s) > maxPath || strings.ContainsAny(s, "\x00\n\r") {
		return Location{}, fmt.Errorf("netboot: path %q: %w", clip(s), ErrBadPath)
	}
	if rest, ok := strings.CutPrefix(s, "http://"); ok {
		host, path, _ := strings.Cut(rest, "/")
		srv, err := server(host, 80)
		if err != nil {
			return Location{}, fmt.Errorf("netboot: %q: %w", clip(s), err)
		}
		return Location{Scheme: HTTP, Server: srv, Path: "/" + path}, nil
	}
	if s[0] != '(' {
		return Location{Scheme: TFTP, Path: s}, nil
	}
	dev, path, ok := strings.Cut(s[1:], ")")
	if !ok {
		return Location{}, fmt.Errorf("netboot: %q: unterminated device: %w", clip(s), ErrBadPath)
	}
	if path == "" || path[0] != '/' {
		return Location{}, fmt.Errorf("netboot: %q: no absolute path after the device: %w", clip(s), ErrBadPath)
	}
	proto, host, hasHost := strings.Cut(dev, ",")
	var l Location
	switch strings.ToLower(proto) {
	case "nd":
		if hasHost {
			return Location{}, fmt.Errorf("netboot: %q: (nd) takes no server: %w", clip(s), ErrBadPath)
		}
		l.Scheme = TFTP
	case "tftp":
		l.Scheme = TFTP
	case "http":
		l.Scheme = HTTP
	default:
		return Location{}, fmt.Errorf("netboot: %q: %w", clip(s), ErrNotNetwork)
	}
	if hasHost {
		port := uint16(69)
		if l.Scheme == HTTP {
			port = 80
		}
		srv, err := server(host, port)
		if err != nil {
			return Location{}, fmt.Errorf("netboot: %q: %w", clip(s), err)
		}
		l.Server = srv
	}
	l.Path = path
	return l, nil
}

// server parses "10.0.0.2" or "10.0.0.2:6969".
func server(host string, port uint16) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(host); err == nil {
		if !ap.Addr().Is4() || ap.Port() == 0 {
			return netip.AddrPort{}, fmt.Errorf("server %q: %w", host, ErrBadPath)
		}
		return ap, nil
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("server %q is not an IPv4 address (no DNS): %w", clip(host), ErrBadPath)
	}
	if !a.Is4() {
		return netip.AddrPort{}, fmt.Errorf("server %q: %w", host, ErrBadPath)
	}
	return netip.AddrPortFrom(a, port), nil
}

// clip makes untrusted text short and printable for error messages.
func clip(s string) string {
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, s)
}
