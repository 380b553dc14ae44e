package minios

// Console messages of the shim. fmt cannot be used in kernel mode (it
// allocates), so messages are assembled in a fixed buffer and handed to the
// console as a whole line.

const kbufSize = 512

type kline struct {
	buf [kbufSize]byte
	n   int
}

func (l *kline) s(str string) *kline {
	for i := 0; i < len(str) && l.n < kbufSize; i++ {
		l.buf[l.n] = str[i]
		l.n++
	}
	return l
}

func (l *kline) c(b byte) *kline {
	if l.n < kbufSize {
		l.buf[l.n] = b
		l.n++
	}
	return l
}

const hexDigits = "0123456789abcdef"

// x appends v as 0x-prefixed hexadecimal.
func (l *kline) x(v uint64) *kline {
	l.s("0x")
	started := false
	for shift := 60; shift >= 0; shift -= 4 {
		d := (v >> uint(shift)) & 0xf
		if d != 0 || started || shift == 0 {
			started = true
			l.c(hexDigits[d])
		}
	}
	return l
}

// d appends v as signed decimal.
func (l *kline) d(v int64) *kline {
	if v < 0 {
		l.c('-')
		return l.u(uint64(-v))
	}
	return l.u(uint64(v))
}

// u appends v as unsigned decimal.
func (l *kline) u(v uint64) *kline {
	var tmp [20]byte
	i := len(tmp)
	for {
		i--
		tmp[i] = byte('0' + v%10)
		v /= 10
		if v == 0 || i == 0 {
			break
		}
	}
	for ; i < len(tmp); i++ {
		l.c(tmp[i])
	}
	return l
}

// bytes returns the assembled line.
func (l *kline) bytes() []byte { return l.buf[:l.n] }
