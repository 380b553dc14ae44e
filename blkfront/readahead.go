package blkfront

import "context"

// Read-ahead. Each ReadAt's requests go in flight together, but the
// ring drains before the next ReadAt submits anything: with the backend
// in another domain that idle round trip is a large part of a sequential
// read (make bench BENCH=blkfront). So a read that continues the
// previous one (it starts within or at the end of it and goes further)
// keeps submitting past its own end, up to a window, and leaves those
// requests in flight when it returns; the next sequential read adopts
// them. The window starts at the read's length and doubles with each
// sequential read, up to Options.ReadAhead (and half the bounce pages).
// Any other read ends the stream and drops what was read ahead.
//
// Read-ahead must never return data older than a write: conn.gen counts
// write submissions and completions, each request read ahead records
// it, and read-ahead from another generation is dropped. A write also
// drops the parked read-ahead at once, and so does a request that finds
// the pool empty while parked read-ahead holds pages.

// readahead is the state of the sequential stream, under conn.mu.
type readahead struct {
	pos, end int64   // aligned range of the last read; end -1: none yet
	window   int64   // bytes to read ahead; 0 while not sequential
	queue    []chunk // parked: read ahead, in order, not yet read
	busy     bool    // a read owns the stream (and its queue)
}

// startStreamLocked decides whether the read of s continues the stream.
// If it does, it hands s the parked requests from the one holding s.pos
// on, sets s.limit past s.end, and returns true: the caller owns the
// stream until parkLocked.
func (c *conn) startStreamLocked(s *span) bool {
	ra := &c.ra
	if c.raMax <= 0 || ra.busy {
		return false // off, or another reader streams: leave it be
	}
	seq := ra.end >= 0 && s.pos >= ra.pos && s.pos <= ra.end && s.end > ra.end
	ra.pos, ra.end = s.pos, s.end
	if !seq {
		ra.window = 0
		c.dropLocked()
		return false
	}
	ra.window = min(c.raMax, max(2*ra.window, s.end-s.pos))
	q := ra.queue
	ra.queue = nil
	if len(q) > 0 && q[0].gen != c.gen {
		c.abandonLocked(q) // a write came in between
		q = nil
	}
	skip := 0
	for skip < len(q) && q[skip].hi <= s.pos {
		skip++
	}
	if skip < len(q) && q[skip].lo > s.pos {
		skip = len(q) // it starts before the read-ahead: not worth a gap
	}
	c.abandonLocked(q[:skip])
	s.queue = q[skip:]
	s.limit = min(c.size, s.end+ra.window)
	ra.busy = true
	if n := len(s.queue); n > 0 && s.queue[n-1].hi > s.limit {
		s.limit = s.queue[n-1].hi
	}
	return true
}

// parkLocked ends a streaming read: the requests it left in flight (or
// finished, past its end) wait for the next sequential read.
func (c *conn) parkLocked(rest []chunk, err error) {
	c.ra.busy = false
	if err != nil || c.closing || len(rest) == 0 || rest[0].gen != c.gen {
		c.abandonLocked(rest)
		if err != nil {
			c.ra.window = 0
		}
		return
	}
	c.ra.queue = rest
	c.broadcastLocked() // a request waiting for pages may take these now
}

// dropLocked gives up the parked read-ahead.
func (c *conn) dropLocked() {
	if len(c.ra.queue) == 0 {
		return
	}
	c.abandonLocked(c.ra.queue)
	c.ra.queue = nil
}

// cacheBlock is the unit of the block cache: reads shorter than this go
// through it.
const cacheBlock = 64 << 10

// blockCache keeps the blocks recently read for short reads. Filesystem
// metadata (partition tables, superblocks, group descriptors, inodes,
// directories, FAT sectors) is read a few hundred bytes at a time,
// mostly close to what was read before: one ring round trip then
// serves a whole block of it. Blocks are immutable once cached (a
// reader copies out of one without a lock), evicted least recently
// used, and all dropped when conn.gen moves. Under conn.mu.
type blockCache struct {
	max    int
	gen    uint64
	tick   uint64
	blocks map[int64]*cached
}

type cached struct {
	data []byte
	used uint64
}

func newBlockCache(max int) *blockCache {
	return &blockCache{max: max, blocks: map[int64]*cached{}}
}

// getLocked returns the block at off if it is cached for generation gen.
func (bc *blockCache) getLocked(off int64, gen uint64) []byte {
	if bc.gen != gen {
		clear(bc.blocks)
		bc.gen = gen
	}
	b := bc.blocks[off]
	if b == nil {
		return nil
	}
	bc.tick++
	b.used = bc.tick
	return b.data
}

// putLocked caches data as the block at off, read in generation read;
// now is the generation now.
func (bc *blockCache) putLocked(off int64, data []byte, read, now uint64) {
	if read != now {
		return // a write came meanwhile: data may predate it
	}
	if bc.gen != now {
		clear(bc.blocks)
		bc.gen = now
	}
	if len(bc.blocks) >= bc.max {
		var old int64
		var oldest uint64 = 1<<64 - 1
		for k, b := range bc.blocks {
			if b.used < oldest {
				old, oldest = k, b.used
			}
		}
		delete(bc.blocks, old)
	}
	bc.tick++
	bc.blocks[off] = &cached{data: data, used: bc.tick}
}

// cachedRead serves a short read (p within the device) from the block
// cache, reading the blocks it misses.
func (c *conn) cachedRead(ctx context.Context, k call, p []byte, off int64) (int, error) {
	copied := 0
	for copied < len(p) {
		at := off + int64(copied)
		blk := at - at%cacheBlock
		c.mu.Lock()
		gen := c.gen
		data := c.cache.getLocked(blk, gen)
		c.mu.Unlock()
		if data != nil {
			c.d.st.cacheHits.Add(1)
		} else {
			c.d.st.cacheMisses.Add(1)
			data = make([]byte, min(cacheBlock, c.size-blk))
			if _, err := c.read(ctx, k, data, blk); err != nil {
				return copied, err
			}
			c.mu.Lock()
			c.cache.putLocked(blk, data, gen, c.gen)
			c.mu.Unlock()
		}
		copied += copy(p[copied:], data[at-blk:])
	}
	return copied, nil
}
