package grub

import (
	"crypto/md5"
	"crypto/pbkdf2"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// ErrBadPassword reports a password entry that cannot be checked.
var ErrBadPassword = errors.New("bad password specification")

// Password kinds.
const (
	PassPlain  = "plain"
	PassMD5    = "md5"    // MD5-crypt "$1$salt$hash" (menu.lst password --md5)
	PassPBKDF2 = "pbkdf2" // grub.pbkdf2.sha512.ITER.SALT.HASH (password_pbkdf2)
)

// MaxPBKDF2Iter bounds the work a config can make a password check do.
const MaxPBKDF2Iter = 1_000_000

// Password is one user's credential. The secret never appears in JSON.
type Password struct {
	User   string `json:"user,omitempty"` // "" in menu.lst
	Kind   string `json:"kind"`
	Secret string `json:"-"`
}

// NewPassword validates a credential.
func NewPassword(user, kind, secret string) (Password, error) {
	p := Password{User: user, Kind: kind, Secret: secret}
	switch kind {
	case PassPlain:
	case PassMD5:
		if _, _, err := splitMD5Crypt(secret); err != nil {
			return Password{}, err
		}
	case PassPBKDF2:
		if _, _, _, err := splitPBKDF2(secret); err != nil {
			return Password{}, err
		}
	default:
		return Password{}, fmt.Errorf("%w: kind %q", ErrBadPassword, kind)
	}
	return p, nil
}

// Check reports whether pw is this credential's password.
func (p Password) Check(pw string) bool {
	switch p.Kind {
	case PassPlain:
		return subtle.ConstantTimeCompare([]byte(pw), []byte(p.Secret)) == 1
	case PassMD5:
		salt, _, err := splitMD5Crypt(p.Secret)
		if err != nil {
			return false
		}
		return subtle.ConstantTimeCompare([]byte(MD5Crypt(pw, salt)), []byte(p.Secret)) == 1
	case PassPBKDF2:
		iter, salt, want, err := splitPBKDF2(p.Secret)
		if err != nil {
			return false
		}
		got, err := pbkdf2.Key(sha512.New, pw, salt, iter, len(want))
		return err == nil && subtle.ConstantTimeCompare(got, want) == 1
	}
	return false
}

// Auth is a menu's access control.
//
// menu.lst has one password (User "") that guards editing, the command line
// and entries marked "lock". GRUB 2 defines users with password and
// password_pbkdf2; once the superusers variable names some, only they may
// edit or use the command line, and entries are locked unless
// --unrestricted.
type Auth struct {
	Users      []Password `json:"users"`
	Superusers []string   `json:"superusers"`
}

// NamedUsers reports whether users are asked for a name (GRUB 2).
func (a *Auth) NamedUsers() bool {
	for _, u := range a.Users {
		if u.User != "" {
			return true
		}
	}
	return false
}

// check returns whether user/pw is a valid login among the named users
// (all users when names is nil).
func (a *Auth) check(user, pw string, names []string) bool {
	for _, u := range a.Users {
		if u.User != user {
			continue
		}
		if names != nil && !slices.Contains(names, u.User) {
			continue
		}
		if u.Check(pw) {
			return true
		}
	}
	return false
}

// CanEdit reports whether user/pw may edit entries and use the command line.
func (m *Menu) CanEdit(user, pw string) bool {
	if m.Auth == nil {
		return true
	}
	return m.Auth.check(user, pw, m.Auth.Superusers)
}

// EditLocked reports whether editing and the command line need a password.
func (m *Menu) EditLocked() bool { return m.Auth != nil }

// BootLocked reports whether booting e needs a password.
func (m *Menu) BootLocked(e *Entry) bool {
	return e.Password != nil || (e.Locked && m.Auth != nil)
}

// CanBoot reports whether user/pw may boot e.
func (m *Menu) CanBoot(e *Entry, user, pw string) bool {
	if e.Password != nil && e.Password.Check(pw) {
		return true
	}
	if !m.BootLocked(e) {
		return true
	}
	if m.Auth == nil {
		return false
	}
	allowed := append(slices.Clone(m.Auth.Superusers), e.Users...)
	return m.Auth.check(user, pw, allowed)
}

const itoa64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// splitMD5Crypt checks "$1$salt$hash" and returns salt and hash.
func splitMD5Crypt(s string) (salt, hash string, err error) {
	rest, ok := strings.CutPrefix(s, "$1$")
	if !ok {
		return "", "", fmt.Errorf("%w: MD5 password does not start with $1$", ErrBadPassword)
	}
	salt, hash, ok = strings.Cut(rest, "$")
	if !ok || len(salt) > 8 || len(hash) != 22 {
		return "", "", fmt.Errorf("%w: malformed MD5-crypt hash", ErrBadPassword)
	}
	return salt, hash, nil
}

// MD5Crypt computes the FreeBSD/glibc "$1$" password hash of pw with salt
// (at most 8 characters are used).
func MD5Crypt(pw, salt string) string {
	if len(salt) > 8 {
		salt = salt[:8]
	}
	const magic = "$1$"
	alt := md5.Sum([]byte(pw + salt + pw))
	h := md5.New()
	h.Write([]byte(pw + magic + salt))
	for n := len(pw); n > 0; n -= 16 {
		h.Write(alt[:min(n, 16)])
	}
	for i := len(pw); i != 0; i >>= 1 {
		if i&1 != 0 {
			h.Write([]byte{0})
		} else {
			h.Write([]byte(pw[:1]))
		}
	}
	final := h.Sum(nil)
	for i := 0; i < 1000; i++ {
		h := md5.New()
		if i&1 != 0 {
			h.Write([]byte(pw))
		} else {
			h.Write(final)
		}
		if i%3 != 0 {
			h.Write([]byte(salt))
		}
		if i%7 != 0 {
			h.Write([]byte(pw))
		}
		if i&1 != 0 {
			h.Write(final)
		} else {
			h.Write([]byte(pw))
		}
		final = h.Sum(final[:0])
	}
	var b strings.Builder
	b.WriteString(magic + salt + "$")
	to64 := func(v uint32, n int) {
		for ; n > 0; n-- {
			b.WriteByte(itoa64[v&0x3f])
			v >>= 6
		}
	}
	f := func(i int) uint32 { return uint32(final[i]) }
	to64(f(0)<<16|f(6)<<8|f(12), 4)
	to64(f(1)<<16|f(7)<<8|f(13), 4)
	to64(f(2)<<16|f(8)<<8|f(14), 4)
	to64(f(3)<<16|f(9)<<8|f(15), 4)
	to64(f(4)<<16|f(10)<<8|f(5), 4)
	to64(f(11), 2)
	return b.String()
}

// splitPBKDF2 parses grub.pbkdf2.sha512.ITER.SALTHEX.HASHHEX.
func splitPBKDF2(s string) (iter int, salt, hash []byte, err error) {
	f := strings.Split(s, ".")
	if len(f) != 6 || f[0] != "grub" || f[1] != "pbkdf2" || f[2] != "sha512" {
		return 0, nil, nil, fmt.Errorf("%w: not grub.pbkdf2.sha512.ITER.SALT.HASH", ErrBadPassword)
	}
	iter, err = strconv.Atoi(f[3])
	if err != nil || iter < 1 || iter > MaxPBKDF2Iter {
		return 0, nil, nil, fmt.Errorf("%w: PBKDF2 iteration count %q (at most %d)", ErrBadPassword, f[3], MaxPBKDF2Iter)
	}
	if len(f[4]) > 1024 || len(f[5]) > 1024 {
		return 0, nil, nil, fmt.Errorf("%w: PBKDF2 salt or hash too long", ErrBadPassword)
	}
	if salt, err = hex.DecodeString(f[4]); err != nil {
		return 0, nil, nil, fmt.Errorf("%w: PBKDF2 salt: %v", ErrBadPassword, err)
	}
	if hash, err = hex.DecodeString(f[5]); err != nil || len(hash) == 0 {
		return 0, nil, nil, fmt.Errorf("%w: PBKDF2 hash: %v", ErrBadPassword, err)
	}
	return iter, salt, hash, nil
}
