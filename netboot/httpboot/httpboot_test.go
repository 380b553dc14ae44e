package httpboot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func hostDial(ctx context.Context, to netip.AddrPort) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "tcp", to.String())
}

func TestGet(t *testing.T) {
	body := bytes.Repeat([]byte("kernel!"), 100000)
	mux := http.NewServeMux()
	mux.HandleFunc("/vmlinuz", func(w http.ResponseWriter, r *http.Request) { w.Write(body) })
	mux.HandleFunc("/chunked", func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i < len(body); i += 4096 {
			w.Write(body[i:min(i+4096, len(body))])
			w.(http.Flusher).Flush()
		}
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "999999999")
		w.Write(body)
	})
	mux.HandleFunc("/stall", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(body)))
		w.Write(body[:1000])
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	mux.HandleFunc("/missing", http.NotFound)
	var srv *httptest.Server
	mux.HandleFunc("/redirect/", func(w http.ResponseWriter, r *http.Request) {
		var n int
		fmt.Sscanf(strings.TrimPrefix(r.URL.Path, "/redirect/"), "%d", &n)
		if n == 0 {
			http.Redirect(w, r, "/vmlinuz", http.StatusFound)
			return
		}
		http.Redirect(w, r, fmt.Sprintf("/redirect/%d", n-1), http.StatusMovedPermanently)
	})
	mux.HandleFunc("/to-https", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://"+r.Host+"/vmlinuz", http.StatusFound)
	})
	mux.HandleFunc("/to-name", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://boot.example/vmlinuz", http.StatusFound)
	})
	srv = httptest.NewServer(mux)
	defer srv.Close()

	tests := []struct {
		path      string
		max       int64
		want      []byte
		redirects int
		err       error
	}{
		{path: "/vmlinuz", want: body},
		{path: "/chunked", want: body},
		{path: "/vmlinuz", max: int64(len(body)), want: body},
		{path: "/vmlinuz", max: int64(len(body)) - 1, err: ErrTooLarge},
		{path: "/chunked", max: 10000, err: ErrTooLarge},
		{path: "/big", err: ErrTooLarge, max: 1 << 20},
		{path: "/stall", err: ErrStalled},
		{path: "/missing", err: ErrStatus},
		{path: "/redirect/2", want: body, redirects: 3},
		{path: "/redirect/9", err: ErrRedirect},
		{path: "/to-https", err: ErrRedirect},
		{path: "/to-name", err: ErrURL},
	}
	for _, tc := range tests {
		t.Run(strings.TrimPrefix(tc.path, "/"), func(t *testing.T) {
			c := &Client{Dial: hostDial, MaxSize: tc.max, IdleTimeout: 500 * time.Millisecond}
			defer c.CloseIdle()
			got, st, err := c.Get(context.Background(), srv.URL+tc.path, 0)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				if !strings.Contains(err.Error(), srv.Listener.Addr().String()) {
					t.Errorf("error %q does not name the server", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.want) || st.Bytes != int64(len(tc.want)) {
				t.Fatalf("got %d bytes (stats %d), want %d", len(got), st.Bytes, len(tc.want))
			}
			if st.Redirects != tc.redirects {
				t.Errorf("redirects = %d, want %d", st.Redirects, tc.redirects)
			}
		})
	}
}

func TestCheckURL(t *testing.T) {
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"http://10.0.0.1/vmlinuz", true},
		{"http://10.0.0.1:8080/a/b", true},
		{"https://10.0.0.1/vmlinuz", false},
		{"http://boot.example/vmlinuz", false},
		{"http://[::1]/vmlinuz", false},
		{"http://user:pw@10.0.0.1/", false},
		{"http://10.0.0.1:99999/", false},
		{"ftp://10.0.0.1/", false},
	} {
		c := &Client{Dial: hostDial}
		_, _, err := c.Get(canceled(), tc.url, 0)
		if tc.ok {
			if errors.Is(err, ErrURL) {
				t.Errorf("%s: refused: %v", tc.url, err)
			}
		} else if !errors.Is(err, ErrURL) {
			t.Errorf("%s: err = %v, want ErrURL", tc.url, err)
		}
	}
}

func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// pipeDialer answers every connection with resp and then closes it.
func pipeDialer(resp []byte) Dialer {
	return func(ctx context.Context, to netip.AddrPort) (net.Conn, error) {
		c, s := net.Pipe()
		go func() {
			defer s.Close()
			buf := make([]byte, 4096)
			s.SetReadDeadline(time.Now().Add(time.Second))
			s.Read(buf) // the request
			s.SetWriteDeadline(time.Now().Add(time.Second))
			s.Write(resp)
		}()
		return c, nil
	}
}

// FuzzResponse feeds arbitrary server answers: Get must end (no hang, no
// panic) and never return more than MaxSize bytes.
func FuzzResponse(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffff\r\nhello"))
	f.Add([]byte("HTTP/1.1 302 Found\r\nLocation: http://10.0.0.1/x\r\nContent-Length: 0\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\nxx"))
	f.Add([]byte("HTTP/1.0 200 OK\r\n\r\n" + strings.Repeat("x", 100)))
	f.Fuzz(func(t *testing.T, resp []byte) {
		const limit = 64
		c := &Client{Dial: pipeDialer(resp), MaxSize: limit, IdleTimeout: 200 * time.Millisecond, MaxRedirects: 2}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		b, st, err := c.Get(ctx, "http://10.0.0.1/vmlinuz", 0)
		if len(b) > limit {
			t.Fatalf("%d bytes returned, limit %d", len(b), limit)
		}
		if err == nil && st.Bytes != int64(len(b)) {
			t.Fatalf("stats say %d bytes, %d returned", st.Bytes, len(b))
		}
		if ctx.Err() != nil {
			t.Fatal("Get ran into the test's deadline")
		}
	})
}
