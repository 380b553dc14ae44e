package nettest

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/gopvgrub/gopvgrub/netboot/ipv4"
)

// Socket adapts a host UDP socket to ipv4.PacketConn, so that the clients
// can be run against real servers on loopback, and the fake servers against
// real clients. Host-side tests only.
type Socket struct {
	c *net.UDPConn
}

var _ ipv4.PacketConn = (*Socket)(nil)

// ListenSocket binds addr ("127.0.0.1:0" for an ephemeral port).
func ListenSocket(addr string) (*Socket, error) {
	ua, err := net.ResolveUDPAddr("udp4", addr)
	if err != nil {
		return nil, err
	}
	c, err := net.ListenUDP("udp4", ua)
	if err != nil {
		return nil, err
	}
	return &Socket{c: c}, nil
}

// LocalAddr is the bound address.
func (s *Socket) LocalAddr() netip.AddrPort {
	return s.c.LocalAddr().(*net.UDPAddr).AddrPort()
}

// ReadFrom implements ipv4.PacketConn.
func (s *Socket) ReadFrom(ctx context.Context, p []byte) (int, netip.AddrPort, error) {
	for {
		if err := ctx.Err(); err != nil {
			return 0, netip.AddrPort{}, err
		}
		dl, ok := ctx.Deadline()
		if !ok {
			dl = time.Time{}
		}
		s.c.SetReadDeadline(dl)
		stop := context.AfterFunc(ctx, func() { s.c.SetReadDeadline(time.Unix(1, 0)) })
		n, from, err := s.c.ReadFromUDPAddrPort(p)
		stop()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if ctx.Err() != nil {
				return 0, netip.AddrPort{}, ctx.Err()
			}
			continue // a late AfterFunc of an earlier call
		}
		if err != nil {
			return 0, netip.AddrPort{}, err
		}
		return n, netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), nil
	}
}

// WriteTo implements ipv4.PacketConn.
func (s *Socket) WriteTo(ctx context.Context, p []byte, to netip.AddrPort) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	_, err := s.c.WriteToUDPAddrPort(p, to)
	return err
}

// Close implements ipv4.PacketConn.
func (s *Socket) Close() error { return s.c.Close() }

// LoopbackListener returns a Listen function for the fake servers binding
// sockets on 127.0.0.1 (port 0 for an ephemeral one).
func LoopbackListener() func(port uint16) (ipv4.PacketConn, error) {
	return func(port uint16) (ipv4.PacketConn, error) {
		return ListenSocket(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port).String())
	}
}

// LocalPort is the bound port.
func (s *Socket) LocalPort() uint16 { return s.LocalAddr().Port() }
