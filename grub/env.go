package grub

import (
	"bytes"
	"errors"
	"fmt"
)

// EnvSignature starts a GRUB environment block (grubenv).
const EnvSignature = "# GRUB Environment Block\n"

// MaxEnvSize bounds a grubenv file; GRUB writes 1024 bytes.
const MaxEnvSize = 64 << 10

// ErrBadEnv reports a malformed grubenv.
var ErrBadEnv = errors.New("bad GRUB environment block")

// Env is a parsed grubenv: variables in file order.
type Env struct {
	Names  []string
	Values map[string]string
}

// Get returns a variable's value.
func (e *Env) Get(name string) (string, bool) {
	if e == nil {
		return "", false
	}
	v, ok := e.Values[name]
	return v, ok
}

// ParseEnv parses a grubenv block as GRUB's load_env does: after the
// signature, lines "name=value" with backslash escapes; lines starting
// with '#' (the padding) are skipped. Like GRUB, it stops at the first
// broken line and keeps what came before.
func ParseEnv(data []byte) (*Env, error) {
	if len(data) > MaxEnvSize {
		return nil, fmt.Errorf("%w: %d bytes (limit %d)", ErrBadEnv, len(data), MaxEnvSize)
	}
	if !bytes.HasPrefix(data, []byte(EnvSignature)) {
		return nil, fmt.Errorf("%w: no signature", ErrBadEnv)
	}
	env := &Env{Values: map[string]string{}}
	p := data[len(EnvSignature):]
	for len(p) > 0 {
		if p[0] == '#' {
			p = skipLine(p)
			continue
		}
		eq := bytes.IndexByte(p, '=')
		if eq < 0 {
			break
		}
		name := p[:eq]
		rest := p[eq+1:]
		var val []byte
		i := 0
		for i < len(rest) && rest[i] != '\n' {
			if rest[i] == '\\' && i+1 < len(rest) {
				val = append(val, rest[i+1])
				i += 2
				continue
			}
			val = append(val, rest[i])
			i++
		}
		if i >= len(rest) {
			break // no newline: broken
		}
		if bytes.IndexByte(name, '\n') >= 0 {
			p = skipLine(p)
			continue
		}
		n := string(name)
		if _, dup := env.Values[n]; !dup {
			env.Names = append(env.Names, n)
		}
		env.Values[n] = string(val)
		p = rest[i+1:]
	}
	return env, nil
}

func skipLine(p []byte) []byte {
	if i := bytes.IndexByte(p, '\n'); i >= 0 {
		return p[i+1:]
	}
	return nil
}
