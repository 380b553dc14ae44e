package xenstore

import (
	"io/fs"

	"github.com/gopvgrub/gopvgrub/xen"
)

// Error is the type of the client's own sentinel errors.
type Error string

func (e Error) Error() string { return string(e) }

// Client errors.
const (
	// ErrClosed: the client was closed.
	ErrClosed = Error("xenstore: client closed")
	// ErrReset: the ring was reset (ring reconnection) while the
	// request was in flight; xenstored discarded it, and any open
	// transaction. The request may be retried.
	ErrReset = Error("xenstore: connection reset, request discarded")
	// ErrProtocol: xenstored sent something the protocol does not
	// allow. Framing errors leave the connection unusable until Reset.
	ErrProtocol = Error("xenstore: protocol violation by xenstored")
	// ErrTooLong: a request payload would exceed XENSTORE_PAYLOAD_MAX.
	ErrTooLong = Error("xenstore: request payload exceeds 4096 bytes")
	// ErrBadPath: the path is empty or contains a NUL byte.
	ErrBadPath = Error("xenstore: invalid path")
	// ErrNoReconnect: xenstored does not offer ring reconnection
	// (XENSTORE_SERVER_FEATURE_RECONNECTION).
	ErrNoReconnect = Error("xenstore: server does not support ring reconnection")
	// ErrServer: xenstored reported a connection error in the ring's
	// error field and stopped serving the ring.
	ErrServer = Error("xenstore: server stopped the connection")
	// ErrRetries: a transaction kept conflicting.
	ErrRetries = Error("xenstore: transaction still conflicting after retries")
	// ErrNotIdle: Close could not leave the ring idle.
	ErrNotIdle = Error("xenstore: ring not idle at close")
)

// Errno is an error xenstored returned, by the errno name it sends
// ("ENOENT"). The names it may send are listed in io/xs_wire.h
// (xsd_errors); oxenstored adds EQUOTA.
type Errno string

// Errors xenstored returns. errors.Is also matches ErrNotExist with
// fs.ErrNotExist, ErrExist with fs.ErrExist, ErrPermission with
// fs.ErrPermission, and every name with the xen.Errno of that name.
const (
	ErrInvalid    Errno = "EINVAL"
	ErrPermission Errno = "EACCES"
	ErrExist      Errno = "EEXIST"
	ErrIsDir      Errno = "EISDIR"
	ErrNotExist   Errno = "ENOENT"
	ErrNoMem      Errno = "ENOMEM"
	ErrNoSpace    Errno = "ENOSPC"
	ErrIO         Errno = "EIO"
	ErrNotEmpty   Errno = "ENOTEMPTY"
	ErrNoSys      Errno = "ENOSYS"
	ErrReadOnly   Errno = "EROFS"
	ErrBusy       Errno = "EBUSY"
	ErrAgain      Errno = "EAGAIN" // transaction conflict: redo it
	ErrIsConn     Errno = "EISCONN"
	ErrTooBig     Errno = "E2BIG"
	ErrPerm       Errno = "EPERM"
	ErrQuota      Errno = "EQUOTA"
)

func (e Errno) Error() string {
	var what string
	switch e {
	case ErrInvalid:
		what = "invalid argument"
	case ErrPermission, ErrPerm:
		what = "permission denied"
	case ErrExist:
		what = "node exists"
	case ErrIsDir:
		what = "is a directory"
	case ErrNotExist:
		what = "no such node"
	case ErrNoMem:
		what = "out of memory"
	case ErrNoSpace:
		what = "no space"
	case ErrIO:
		what = "I/O error"
	case ErrNotEmpty:
		what = "directory not empty"
	case ErrNoSys:
		what = "not implemented"
	case ErrReadOnly:
		what = "read-only"
	case ErrBusy:
		what = "busy"
	case ErrAgain:
		what = "transaction conflict, try again"
	case ErrIsConn:
		what = "already connected"
	case ErrTooBig:
		what = "too big"
	case ErrQuota:
		what = "quota exceeded"
	default:
		return "xenstore: " + string(e)
	}
	return "xenstore: " + string(e) + " (" + what + ")"
}

// Is lets errors.Is match the fs sentinels and xen.Errno.
func (e Errno) Is(target error) bool {
	switch target {
	case fs.ErrNotExist:
		return e == ErrNotExist
	case fs.ErrExist:
		return e == ErrExist
	case fs.ErrPermission:
		return e == ErrPermission || e == ErrPerm
	}
	if n, ok := target.(xen.Errno); ok {
		return n != 0 && xen.ErrnoByName(string(e)) == n
	}
	return false
}
