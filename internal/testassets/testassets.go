// Package testassets gives tests the real-world inputs they check against:
// host tools (mke2fs, xz, …) and Debian packages (kernels), downloaded with
// apt-get into a cache under /var/cache that a fresh machine rebuilds.
//
// When an asset is missing, a plain `go test ./...` skips the test with the
// reason; the README's test command sets GOPVGRUB_REQUIRE_ASSETS=1, and then
// a missing asset fails the test instead, so CI never passes by skipping.
package testassets

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
)

// CacheDir is where downloads are kept: $GOPVGRUB_CACHE or /var/cache/gopvgrub.
func CacheDir() string {
	if d := os.Getenv("GOPVGRUB_CACHE"); d != "" {
		return d
	}
	return "/var/cache/gopvgrub"
}

// Required reports whether missing assets must fail tests rather than skip them.
func Required() bool { return os.Getenv("GOPVGRUB_REQUIRE_ASSETS") == "1" }

// Missing skips the test, or fails it when assets are required.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if Required() {
		t.Fatalf("required test asset missing: %s", msg)
	}
	t.Skipf("test asset missing (set GOPVGRUB_REQUIRE_ASSETS=1 to fail instead): %s", msg)
}

// NeedTools checks that every tool is on PATH.
func NeedTools(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			Missing(t, "tool %s not on PATH (see Makefile deps)", tool)
		}
	}
}

// lock takes an exclusive flock on a file in the cache so that parallel
// test binaries do not download the same package twice.
func lock(t testing.TB, name string) func() {
	t.Helper()
	if err := os.MkdirAll(CacheDir(), 0o755); err != nil {
		Missing(t, "cannot create cache dir: %v", err)
	}
	f, err := os.OpenFile(filepath.Join(CacheDir(), name+".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		Missing(t, "cannot open lock: %v", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		Missing(t, "cannot lock: %v", err)
	}
	return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }
}

// aptArgs returns apt-get/apt-cache options selecting a private package
// index for suite ("" means the host's own configuration).
func aptArgs(t testing.TB, suite string) []string {
	t.Helper()
	if suite == "" {
		return nil
	}
	dir := filepath.Join(CacheDir(), "apt", suite)
	if err := os.MkdirAll(filepath.Join(dir, "lists", "partial"), 0o755); err != nil {
		Missing(t, "apt dir: %v", err)
	}
	os.MkdirAll(filepath.Join(dir, "cache", "archives", "partial"), 0o755)
	src := filepath.Join(dir, "sources.list")
	mirror := hostMirror()
	line := fmt.Sprintf("deb %s %s main\n", mirror, suite)
	if old, _ := os.ReadFile(src); string(old) != line {
		os.WriteFile(src, []byte(line), 0o644)
	}
	return []string{
		"-o", "Dir::Etc::SourceList=" + src,
		"-o", "Dir::Etc::SourceParts=/dev/null",
		"-o", "Dir::State::Lists=" + filepath.Join(dir, "lists"),
		"-o", "Dir::Cache=" + filepath.Join(dir, "cache"),
		"-o", "APT::Get::List-Cleanup=0",
	}
}

// hostMirror finds the Debian archive URI in the host's apt sources.
func hostMirror() string {
	if m := os.Getenv("DEBIAN_MIRROR"); m != "" {
		return m
	}
	files, _ := filepath.Glob("/etc/apt/sources.list.d/*.sources")
	files = append(files, "/etc/apt/sources.list")
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) >= 2 && fields[0] == "URIs:" && strings.HasSuffix(fields[1], "/debian") {
				return fields[1]
			}
			if len(fields) >= 3 && fields[0] == "deb" && strings.HasSuffix(fields[1], "/debian") {
				return fields[1]
			}
		}
	}
	return "http://deb.debian.org/debian"
}

func run(dir string, name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

var dependsRE = regexp.MustCompile(`(?m)^\s*Depends:\s*(linux-image-[0-9]\S*)`)

// ResolveKernelPackage turns a metapackage such as linux-image-amd64 into the
// versioned package it depends on (linux-image-6.1.0-NN-amd64).
func ResolveKernelPackage(t testing.TB, suite, meta string) string {
	t.Helper()
	args := append(aptArgs(t, suite), "depends", meta)
	out, err := run("", "apt-cache", args...)
	if err != nil || !dependsRE.Match(out) {
		if suite != "" {
			if _, uerr := run("", "apt-get", append(aptArgs(t, suite), "-q", "update")...); uerr != nil {
				Missing(t, "apt-get update for %s: %v", suite, uerr)
			}
			out, err = run("", "apt-cache", args...)
		}
	}
	m := dependsRE.FindSubmatch(out)
	if err != nil || m == nil {
		Missing(t, "cannot resolve %s in %q: %v", meta, suite, err)
	}
	return string(m[1])
}

// DebianPackage downloads package name from suite ("" = the host's sources)
// and unpacks the paths matching members (tar patterns such as "./boot")
// into a cache directory, which it returns.
func DebianPackage(t testing.TB, suite, name string, members ...string) string {
	t.Helper()
	unlock := lock(t, "deb-"+name)
	defer unlock()
	dir := filepath.Join(CacheDir(), "pkgs", name)
	if _, err := os.Stat(filepath.Join(dir, ".done")); err == nil {
		return dir
	}
	debs := filepath.Join(CacheDir(), "debs")
	os.MkdirAll(debs, 0o755)
	matches, _ := filepath.Glob(filepath.Join(debs, name+"_*.deb"))
	if len(matches) == 0 {
		if _, err := run(debs, "apt-get", append(aptArgs(t, suite), "-q", "download", name)...); err != nil {
			Missing(t, "download %s: %v", name, err)
		}
		matches, _ = filepath.Glob(filepath.Join(debs, name+"_*.deb"))
		if len(matches) == 0 {
			Missing(t, "apt-get download %s produced no file", name)
		}
	}
	os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		Missing(t, "%v", err)
	}
	script := `dpkg-deb --fsys-tarfile "$1" | tar -x -C "$2" --wildcards "${@:3}"`
	if len(members) == 0 {
		script = `dpkg-deb -x "$1" "$2"`
	}
	args := append([]string{"-c", script, "sh", matches[0], dir}, members...)
	if _, err := run("", "bash", args...); err != nil {
		Missing(t, "unpack %s: %v", matches[0], err)
	}
	os.WriteFile(filepath.Join(dir, ".done"), nil, 0o644)
	return dir
}

// DebianKernel returns the path of the vmlinuz shipped by the current
// linux-image-<flavour> of suite (flavour "amd64" or "cloud-amd64";
// suite "" = the host's bookworm sources, or e.g. "trixie").
func DebianKernel(t testing.TB, suite, flavour string) string {
	t.Helper()
	pkg := ResolveKernelPackage(t, suite, "linux-image-"+flavour)
	dir := DebianPackage(t, suite, pkg, "./boot/vmlinuz-*")
	m, _ := filepath.Glob(filepath.Join(dir, "boot", "vmlinuz-*"))
	if len(m) != 1 {
		Missing(t, "no vmlinuz in %s", pkg)
	}
	return m[0]
}
