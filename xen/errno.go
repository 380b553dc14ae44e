package xen

import "syscall"

// Error is the type of this package's own errors. They are constants, not
// errors.New values, because the kernel-mode shim uses this package before
// the Go runtime has run any package initialiser.
type Error string

func (e Error) Error() string { return string(e) }

// Errno is an error number a hypercall returned, negated
// (xen/include/public/errno.h). Xen's values are Linux's x86 values, so
// errors.Is(Errno(x), syscall.Errno(x)) holds, and through it
// errors.Is(err, fs.ErrNotExist) and friends.
type Errno int

// The Xen errno values (errno.h) that hypercalls a PV guest makes can
// return.
const (
	EPERM         Errno = 1
	ENOENT        Errno = 2
	ESRCH         Errno = 3
	EIO           Errno = 5
	ENXIO         Errno = 6
	E2BIG         Errno = 7
	ENOEXEC       Errno = 8
	EBADF         Errno = 9
	ECHILD        Errno = 10
	EAGAIN        Errno = 11
	ENOMEM        Errno = 12
	EACCES        Errno = 13
	EFAULT        Errno = 14
	EBUSY         Errno = 16
	EEXIST        Errno = 17
	EXDEV         Errno = 18
	ENODEV        Errno = 19
	ENOTDIR       Errno = 20
	EISDIR        Errno = 21
	EINVAL        Errno = 22
	ENFILE        Errno = 23
	EMFILE        Errno = 24
	ENOSPC        Errno = 28
	EROFS         Errno = 30
	EMLINK        Errno = 31
	EDOM          Errno = 33
	ERANGE        Errno = 34
	EDEADLK       Errno = 35
	ENAMETOOLONG  Errno = 36
	ENOLCK        Errno = 37
	ENOSYS        Errno = 38
	ENOTEMPTY     Errno = 39
	ENODATA       Errno = 61
	ETIME         Errno = 62
	EBADMSG       Errno = 74
	EOVERFLOW     Errno = 75
	EILSEQ        Errno = 84
	ENOTSOCK      Errno = 88
	EMSGSIZE      Errno = 90
	EOPNOTSUPP    Errno = 95
	EADDRINUSE    Errno = 98
	EADDRNOTAVAIL Errno = 99
	ENOBUFS       Errno = 105
	EISCONN       Errno = 106
	ENOTCONN      Errno = 107
	ETIMEDOUT     Errno = 110
	ECONNREFUSED  Errno = 111
)

// Name returns the symbolic name ("ENOENT"), or "" for a number errno.h
// does not define.
func (e Errno) Name() string {
	switch e {
	case EPERM:
		return "EPERM"
	case ENOENT:
		return "ENOENT"
	case ESRCH:
		return "ESRCH"
	case EIO:
		return "EIO"
	case ENXIO:
		return "ENXIO"
	case E2BIG:
		return "E2BIG"
	case ENOEXEC:
		return "ENOEXEC"
	case EBADF:
		return "EBADF"
	case ECHILD:
		return "ECHILD"
	case EAGAIN:
		return "EAGAIN"
	case ENOMEM:
		return "ENOMEM"
	case EACCES:
		return "EACCES"
	case EFAULT:
		return "EFAULT"
	case EBUSY:
		return "EBUSY"
	case EEXIST:
		return "EEXIST"
	case EXDEV:
		return "EXDEV"
	case ENODEV:
		return "ENODEV"
	case ENOTDIR:
		return "ENOTDIR"
	case EISDIR:
		return "EISDIR"
	case EINVAL:
		return "EINVAL"
	case ENFILE:
		return "ENFILE"
	case EMFILE:
		return "EMFILE"
	case ENOSPC:
		return "ENOSPC"
	case EROFS:
		return "EROFS"
	case EMLINK:
		return "EMLINK"
	case EDOM:
		return "EDOM"
	case ERANGE:
		return "ERANGE"
	case EDEADLK:
		return "EDEADLK"
	case ENAMETOOLONG:
		return "ENAMETOOLONG"
	case ENOLCK:
		return "ENOLCK"
	case ENOSYS:
		return "ENOSYS"
	case ENOTEMPTY:
		return "ENOTEMPTY"
	case ENODATA:
		return "ENODATA"
	case ETIME:
		return "ETIME"
	case EBADMSG:
		return "EBADMSG"
	case EOVERFLOW:
		return "EOVERFLOW"
	case EILSEQ:
		return "EILSEQ"
	case ENOTSOCK:
		return "ENOTSOCK"
	case EMSGSIZE:
		return "EMSGSIZE"
	case EOPNOTSUPP:
		return "EOPNOTSUPP"
	case EADDRINUSE:
		return "EADDRINUSE"
	case EADDRNOTAVAIL:
		return "EADDRNOTAVAIL"
	case ENOBUFS:
		return "ENOBUFS"
	case EISCONN:
		return "EISCONN"
	case ENOTCONN:
		return "ENOTCONN"
	case ETIMEDOUT:
		return "ETIMEDOUT"
	case ECONNREFUSED:
		return "ECONNREFUSED"
	}
	return ""
}

func (e Errno) Error() string {
	if n := e.Name(); n != "" {
		return "xen: " + n
	}
	return "xen: errno " + itoa(int64(e))
}

// Is makes a Xen errno match the Linux errno of the same number, and so
// the fs.Err* sentinels syscall.Errno matches.
func (e Errno) Is(target error) bool {
	if t, ok := target.(syscall.Errno); ok {
		return int(e) == int(t)
	}
	return syscall.Errno(e).Is(target)
}

// HypercallError converts a hypercall's return value: negative values are
// -errno, everything else is success.
func HypercallError(rc int64) error {
	if rc >= 0 {
		return nil
	}
	if rc < -0x7fffffff {
		return Errno(0x7fffffff)
	}
	return Errno(-rc)
}

// ErrnoByName maps an errno name as xenstored sends it ("ENOENT") to the
// number, or 0 when the name is unknown.
func ErrnoByName(name string) Errno {
	// Linear search over the switch above keeps this table-free.
	for e := Errno(1); e <= ECONNREFUSED; e++ {
		if n := e.Name(); n != "" && n == name {
			return e
		}
	}
	return 0
}
