package tftp_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/gopvgrub/gopvgrub/internal/testassets"
	"github.com/gopvgrub/gopvgrub/netboot/ipv4"
	"github.com/gopvgrub/gopvgrub/netboot/nettest"
	"github.com/gopvgrub/gopvgrub/netboot/tftp"
)

// The client against real servers, run from Debian's packages (downloaded
// and unpacked, not installed) on loopback: atftpd, which implements
// windowsize (RFC 7440), and tftpd-hpa, the server Debian installs by
// default, which does not. Both need libwrap0. Our client runs over a host
// socket here instead of package ipv4, which the other tests cover.

type realServer struct {
	name string
	pkg  string
	bin  string
	args func(port int, root string) []string
}

var realServers = []realServer{
	{
		name: "atftpd", pkg: "atftpd", bin: "usr/sbin/atftpd",
		args: func(port int, root string) []string {
			return []string{"--daemon", "--no-fork", "--port", strconv.Itoa(port), "--bind-address", "127.0.0.1",
				"--user", "nobody.nogroup", "--logfile", "/dev/null", "--no-multicast", root}
		},
	},
	{
		name: "tftpd-hpa", pkg: "tftpd-hpa", bin: "usr/sbin/in.tftpd",
		args: func(port int, root string) []string {
			return []string{"-L", "-a", "127.0.0.1:" + strconv.Itoa(port), "-u", "nobody", "-s", root}
		},
	},
}

func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// startReal runs a server over root and returns its address.
func startReal(t *testing.T, rs realServer, root string) netip.AddrPort {
	t.Helper()
	if os.Geteuid() != 0 {
		testassets.Missing(t, "%s needs root to drop privileges and chroot", rs.name)
	}
	dir := testassets.DebianPackage(t, "", rs.pkg)
	lib := testassets.DebianPackage(t, "", "libwrap0")
	bin := filepath.Join(dir, rs.bin)
	port := freeUDPPort(t)
	cmd := exec.Command(bin, rs.args(port, root)...)
	cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH="+filepath.Join(lib, "usr/lib/x86_64-linux-gnu")+":"+filepath.Join(lib, "lib/x86_64-linux-gnu"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		testassets.Missing(t, "start %s: %v", rs.name, err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
	// Wait until it answers.
	c := socketClient(tftp.Options{Timeout: 50 * time.Millisecond, Retries: 1})
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := c.ReadFile(context.Background(), addr, "ready")
		if err == nil {
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not answering on %v: %v; stderr: %s", rs.name, addr, err, stderr.String())
		}
	}
}

func socketClient(o tftp.Options) *tftp.Client {
	return &tftp.Client{
		Listen:   func() (ipv4.PacketConn, error) { return nettest.ListenSocket("127.0.0.1:0") },
		Options:  o,
		Attempts: 1,
	}
}

func tftpRoot(t *testing.T, files map[string][]byte) string {
	t.Helper()
	root, err := os.MkdirTemp("", "gopvgrub-tftp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	os.Chmod(root, 0o755) // the servers read as nobody
	files["ready"] = []byte("ok")
	for name, b := range files {
		p := filepath.Join(root, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestRealServers(t *testing.T) {
	big := pattern(3<<20+17, 11)
	files := map[string][]byte{
		"pxe/menu.lst": []byte("default 0\ntimeout 5\n"),
		"big":          big,
		"empty":        {},
		"exact":        pattern(1468*4, 12),
		"tiny-blocks":  pattern(66000*16+5, 13),
	}
	root := tftpRoot(t, files)
	for _, rs := range realServers {
		t.Run(rs.name, func(t *testing.T) {
			addr := startReal(t, rs, root)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			for _, tc := range []struct {
				file       string
				opts       tftp.Options
				wantWindow int
				ignoredBy  string // server that falls back to plain RFC 1350
			}{
				{"pxe/menu.lst", tftp.Options{}, 1, ""},
				{"/pxe/menu.lst", tftp.Options{BlockSize: 1468}, 1, ""},
				{"empty", tftp.Options{BlockSize: 1468}, 1, ""},
				{"exact", tftp.Options{BlockSize: 1468}, 1, ""},
				{"big", tftp.Options{BlockSize: 1468}, 1, ""},
				{"big", tftp.Options{BlockSize: 1468, WindowSize: 8}, map[string]int{"atftpd": 8, "tftpd-hpa": 1}[rs.name], ""},
				{"big", tftp.Options{BlockSize: 1468, WindowSize: 16}, map[string]int{"atftpd": 16, "tftpd-hpa": 1}[rs.name], ""},
				// More than 65535 blocks: the block number wraps
				// (tftpd-hpa); atftpd declines options that would
				// need more than 65535 blocks and sends 512-byte
				// blocks instead.
				{"tiny-blocks", tftp.Options{BlockSize: 16, WindowSize: 16}, 1, "atftpd"},
			} {
				name := fmt.Sprintf("%s/blksize%d/window%d", tc.file, tc.opts.BlockSize, tc.opts.WindowSize)
				t.Run(name, func(t *testing.T) {
					var buf bytes.Buffer
					start := time.Now()
					st, err := socketClient(tc.opts).Get(ctx, addr, tc.file, &buf)
					want := files[filepath.Clean("/" + tc.file)[1:]]
					if err != nil || !bytes.Equal(buf.Bytes(), want) {
						t.Fatalf("%v; %d bytes, want %d; %+v", err, buf.Len(), len(want), st)
					}
					if tc.ignoredBy == rs.name {
						if !st.OptionsIgnored || st.BlockSize != tftp.DefaultBlockSize {
							t.Fatalf("negotiated %+v", st)
						}
					} else if st.WindowSize != tc.wantWindow || st.TransferSize != int64(len(want)) || (tc.opts.BlockSize > 0 && st.BlockSize != tc.opts.BlockSize) {
						t.Fatalf("negotiated %+v", st)
					}
					t.Logf("%d bytes in %v, %+v", len(want), time.Since(start), st)
				})
			}
			_, err := socketClient(tftp.Options{}).ReadFile(ctx, addr, "no/such/file")
			var se *tftp.ServerError
			if !errors.As(err, &se) || se.Code != tftp.ErrCodeNotFound {
				t.Fatalf("missing file: %v", err)
			}
			t.Logf("missing file: %v", err)
			_, err = socketClient(tftp.Options{MaxSize: 1 << 20}).ReadFile(ctx, addr, "big")
			if !errors.Is(err, tftp.ErrTooLarge) {
				t.Fatalf("size limit: %v", err)
			}
		})
	}
}
