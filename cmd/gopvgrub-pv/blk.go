package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gopvgrub/gopvgrub/blkfront"
)

// blkTest is the guest side of the e2e scenarios blk-read, blk-reconnect
// and the blkfront benchmark. For every vbd it prints what was
// negotiated and the sha256 of the whole disk (dom0 compares it with
// sha256sum of the image), shows what reading past the end and writing
// to a read-only disk answer, and writes a marker into a writable disk's
// last 4 KiB (dom0 reads it back afterwards). Options, as extra=
// words:
//
//	blk.reopen=N  close every disk and open it again N times, reading it
//	              through each time; after each close it waits
//	              blk.pause seconds (default 2) so that dom0 can check
//	              that the backend is back in InitWait
//	blk.bench=N   instead, time N sequential reads of each whole disk
//	              (no hashing) and print the throughput
//	blk.readahead=B  blkfront's Options.ReadAhead (-1: none)
func blkTest(args []string) error {
	opt := map[string]string{}
	for _, a := range args {
		if k, v, ok := strings.Cut(a, "="); ok && strings.HasPrefix(k, "blk.") {
			opt[k] = v
		}
	}
	num := func(k string, def int) int {
		if v, err := strconv.Atoi(opt[k]); err == nil {
			return v
		}
		return def
	}
	bl, err := newBootloader()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cfg := blkfront.Config{Store: bl.store, Platform: &bl.plat, Grants: bl.grants,
		Options: blkfront.Options{ReadAhead: num("blk.readahead", 0)}}
	disks, err := blkfront.OpenAll(ctx, cfg)
	if err != nil {
		return err
	}
	if len(disks) == 0 {
		return errors.New("no vbd")
	}
	sort.Slice(disks, func(i, j int) bool { return disks[i].Name() < disks[j].Name() })
	for _, d := range disks {
		in := d.Info()
		fmt.Printf("BLK dev %s vbd %d size %d sector %d physical %d ro %v cdrom %v params %s ring %d indirect %v segs %d persistent %v\n",
			d.Name(), d.ID(), d.Size(), in.SectorSize, in.PhysicalSectorSize, d.ReadOnly(), d.CDROM(), in.Params,
			in.RingPages, in.Indirect, in.MaxSegments, in.Persistent)
	}
	if n := num("blk.bench", 0); n > 0 {
		for _, d := range disks {
			for i := 0; i < n; i++ {
				t0 := time.Now()
				got, err := readAll(ctx, d, nil)
				if err != nil {
					return err
				}
				el := time.Since(t0)
				fmt.Printf("BLK bench %s bytes %d ms %.1f MBps %.1f\n", d.Name(), got, float64(el.Microseconds())/1e3,
					float64(got)/el.Seconds()/1e6)
				st := d.Stats()
				fmt.Printf("BLK stats %s requests %d max-in-flight %d read-ahead %d\n", d.Name(), st.Requests, st.MaxInFlight, st.ReadAhead)
			}
		}
		copySpeed()
		fmt.Println("BLK done")
		return nil
	}

	sums := map[string]string{}
	for _, d := range disks {
		if sums[d.Name()], err = hashDisk(ctx, d, ""); err != nil {
			return err
		}
		wrote, err := edges(d)
		if err != nil {
			return err
		}
		if wrote && num("blk.reopen", 0) > 0 {
			if sums[d.Name()], err = hashDisk(ctx, d, " after writing"); err != nil {
				return err
			}
		}
	}
	for i := 1; i <= num("blk.reopen", 0); i++ {
		for _, d := range disks {
			if err := d.Close(ctx); err != nil {
				return fmt.Errorf("close %s: %w", d.Name(), err)
			}
			fmt.Printf("BLK closed %s cycle %d\n", d.Name(), i)
		}
		time.Sleep(time.Duration(num("blk.pause", 2)) * time.Second)
		for _, d := range disks {
			if err := d.Reopen(ctx); err != nil {
				return fmt.Errorf("reopen %s: %w", d.Name(), err)
			}
			sum, err := hashDisk(ctx, d, fmt.Sprintf(" cycle %d", i))
			if err != nil {
				return err
			}
			if sum != sums[d.Name()] {
				return fmt.Errorf("%s reads differently after reopening: %s, first %s", d.Name(), sum, sums[d.Name()])
			}
		}
	}
	for _, d := range disks {
		if err := d.Close(ctx); err != nil {
			return fmt.Errorf("close %s: %w", d.Name(), err)
		}
	}
	fmt.Println("BLK done")
	return nil
}

// copySpeed prints how fast this domain copies 256 MiB out of 4 KiB
// pages into a 4 MiB buffer, as ReadAt does out of its bounce pages: the
// part of the benchmark's time that is the copy, not the ring.
func copySpeed() {
	src := make([]byte, 1<<20)
	dst := make([]byte, 4<<20)
	t0 := time.Now()
	for pass := 0; pass < 64; pass++ {
		for off := 0; off < len(dst); off += 4096 {
			s := (off % len(src))
			copy(dst[off:off+4096], src[s:s+4096])
		}
	}
	el := time.Since(t0)
	fmt.Printf("BLK memcpy bytes %d ms %.1f MBps %.1f\n", 256<<20, float64(el.Microseconds())/1e3, float64(256<<20)/el.Seconds()/1e6)
}

// readAll reads d start to end in 4 MiB requests, feeding h if not nil.
func readAll(ctx context.Context, d *blkfront.Device, h io.Writer) (int64, error) {
	buf := make([]byte, 4<<20)
	var off int64
	for off < d.Size() {
		n, err := d.ReadAtContext(ctx, buf, off)
		if h != nil {
			h.Write(buf[:n])
		}
		off += int64(n)
		if errors.Is(err, io.EOF) && off == d.Size() {
			break
		}
		if err != nil {
			return off, err
		}
	}
	return off, nil
}

func hashDisk(ctx context.Context, d *blkfront.Device, tag string) (string, error) {
	h := sha256.New()
	t0 := time.Now()
	n, err := readAll(ctx, d, h)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", d.Name(), err)
	}
	el := time.Since(t0)
	sum := fmt.Sprintf("%x", h.Sum(nil))
	fmt.Printf("BLK sha %s %s bytes %d ms %d%s\n", d.Name(), sum, n, el.Milliseconds(), tag)
	return sum, nil
}

// edges shows reads past the end and writes: refused on a read-only
// disk, and on a writable one a 4 KiB marker and an unaligned one at the
// end, read back.
func edges(d *blkfront.Device) (wrote bool, err error) {
	buf := make([]byte, 8192)
	n, err := d.ReadAt(buf[:4096], d.Size())
	fmt.Printf("BLK past-end %s n %d err %v\n", d.Name(), n, err)
	if n != 0 || !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("%s: read at the end gave %d bytes, %v", d.Name(), n, err)
	}
	n, err = d.ReadAt(buf, d.Size()-4096)
	fmt.Printf("BLK straddle %s n %d err %v\n", d.Name(), n, err)
	if n != 4096 || !errors.Is(err, io.EOF) {
		return false, fmt.Errorf("%s: read across the end gave %d bytes, %v", d.Name(), n, err)
	}
	mark := []byte(fmt.Sprintf("gopvgrub-blk-marker %s %d\n", d.Name(), d.Size()))
	if d.ReadOnly() {
		n, err := d.WriteAt(mark, 0)
		fmt.Printf("BLK write %s refused n %d: %v\n", d.Name(), n, err)
		if n != 0 || !errors.Is(err, blkfront.ErrReadOnly) {
			return false, fmt.Errorf("%s is read-only, but a write gave %d bytes, %v", d.Name(), n, err)
		}
		return false, nil
	}
	at := d.Size() - 4096 + 100 // unaligned: read-modify-write of one sector
	if n, err := d.WriteAt(mark, at); err != nil || n != len(mark) {
		return false, fmt.Errorf("write %s at %d: %d bytes, %w", d.Name(), at, n, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := d.Sync(ctx); err != nil {
		return false, fmt.Errorf("sync %s: %w", d.Name(), err)
	}
	got := make([]byte, len(mark))
	if _, err := d.ReadAt(got, at); err != nil || string(got) != string(mark) {
		return false, fmt.Errorf("%s: marker read back as %q, %v", d.Name(), got, err)
	}
	n, err = d.WriteAt(buf[:1024], d.Size()-512)
	fmt.Printf("BLK write-past-end %s n %d err %v\n", d.Name(), n, err)
	if n != 512 || err == nil {
		return true, fmt.Errorf("%s: a write across the end gave %d bytes, %v", d.Name(), n, err)
	}
	fmt.Printf("BLK wrote %s at %d %q\n", d.Name(), at, strings.TrimSpace(string(mark)))
	return true, nil
}
