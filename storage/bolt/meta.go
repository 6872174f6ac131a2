package bolt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

// bbolt maps the file into memory and trusts its header: a file cut shorter
// than its header says makes bbolt fault while opening it, before it returns
// the handle that would release its file lock. checkLength reads the two
// header (meta) pages the way bbolt does and refuses such a file first.

// The meta page layout of bbolt's file format 2, after a 16-byte page
// header: magic, version, page size, flags (4 bytes each), the root bucket
// (16), freelist page, high-water page and transaction id (8 each), then
// the checksum of those 56 bytes.
const (
	pageHeader  = 16
	metaSize    = 4*4 + 16 + 8*3 // the checksummed part
	metaMagic   = 0xED0CDAED
	metaVersion = 2
)

type meta struct {
	pageSize uint32
	freelist uint64 // the freelist's page, or noFreelist
	pgid     uint64 // the first page past the end of the data
	txid     uint64
}

const (
	noFreelist   = ^uint64(0)
	freelistPage = 0x10 // the page header's flag for a freelist page
)

// readMeta decodes and validates a meta page; ok is false for an invalid one.
func readMeta(b []byte) (m meta, ok bool) {
	if len(b) < pageHeader+metaSize+8 {
		return m, false
	}
	d := b[pageHeader:]
	le := binary.LittleEndian
	if le.Uint32(d[0:]) != metaMagic || le.Uint32(d[4:]) != metaVersion {
		return m, false
	}
	h := fnv.New64a()
	_, _ = h.Write(d[:metaSize])
	if h.Sum64() != le.Uint64(d[metaSize:]) {
		return m, false
	}
	return meta{pageSize: le.Uint32(d[8:]), freelist: le.Uint64(d[32:]), pgid: le.Uint64(d[40:]), txid: le.Uint64(d[48:])}, true
}

// checkLength refuses a file shorter than the newer valid meta page says,
// or whose freelist page is not one (bbolt reads it while opening, and
// panics on it). A file with no valid meta page is left for bbolt to refuse.
func checkLength(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	buf := make([]byte, pageHeader+metaSize+8)
	var best meta
	found := false
	for i := range 2 {
		off := int64(0)
		if i == 1 {
			if !found || best.pageSize == 0 {
				break
			}
			off = int64(best.pageSize)
		}
		if _, err := f.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		if m, ok := readMeta(buf); ok && (!found || m.txid > best.txid) {
			best, found = m, true
		}
	}
	if !found {
		return nil
	}
	if uint64(fi.Size()) < best.pgid*uint64(best.pageSize) {
		return fmt.Errorf("the file is %d bytes, shorter than the %d its header records: it was cut off",
			fi.Size(), best.pgid*uint64(best.pageSize))
	}
	if best.freelist != noFreelist {
		if best.freelist >= best.pgid {
			return fmt.Errorf("the freelist page %d is past the end of the data", best.freelist)
		}
		hdr := make([]byte, pageHeader)
		if _, err := f.ReadAt(hdr, int64(best.freelist)*int64(best.pageSize)); err != nil {
			return fmt.Errorf("read the freelist page: %w", err)
		}
		if flags := binary.LittleEndian.Uint16(hdr[8:]); flags != freelistPage {
			return fmt.Errorf("page %d should be the freelist but is not (flags %#x)", best.freelist, flags)
		}
	}
	return nil
}
