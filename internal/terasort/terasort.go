package terasort

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
)

// Sizes of a record.
const (
	RecordSize = 100 // with its newline
	KeySize    = 10
)

// Summary describes a set of records independently of their order: their
// count and the sum of their CRC-32s.
type Summary struct {
	Records  int64
	Checksum uint64
}

func (s *Summary) add(rec []byte) { s.Add(rec) }

// Add counts a record (without its newline).
func (s *Summary) Add(rec []byte) {
	s.Records++
	s.Checksum += uint64(crc32.ChecksumIEEE(rec))
}

// GenSkewed is Gen with every other record's key replaced by key (10
// bytes): one key holds half the records.
func GenSkewed(dir string, files int, total int64, seed uint64, key string) (Summary, []string, error) {
	var sum Summary
	var paths []string
	if files < 1 {
		files = 1
	}
	if len(key) != KeySize {
		return sum, nil, fmt.Errorf("terasort: a skewed key of %d bytes, want %d", len(key), KeySize)
	}
	perFile := total / RecordSize / int64(files)
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
	rec := make([]byte, RecordSize)
	n := 0
	for f := 0; f < files; f++ {
		path := filepath.Join(dir, fmt.Sprintf("skewed-%03d.txt", f))
		out, err := os.Create(path)
		if err != nil {
			return sum, nil, fmt.Errorf("terasort: %w", err)
		}
		w := bufio.NewWriterSize(out, 1<<20)
		for i := int64(0); i < perFile; i++ {
			for j := 0; j < RecordSize-1; j++ {
				rec[j] = byte(33 + rng.IntN(94))
			}
			if n%2 == 0 {
				copy(rec, key)
			}
			n++
			rec[RecordSize-1] = '\n'
			sum.Add(rec[:RecordSize-1])
			w.Write(rec)
		}
		if err := w.Flush(); err != nil {
			out.Close()
			return sum, nil, fmt.Errorf("terasort: %w", err)
		}
		if err := out.Close(); err != nil {
			return sum, nil, fmt.Errorf("terasort: %w", err)
		}
		paths = append(paths, path)
	}
	return sum, paths, nil
}

// Gen writes about total bytes of records into files files under dir
// (input-NNN.txt), from seed, and returns their summary and paths.
func Gen(dir string, files int, total int64, seed uint64) (Summary, []string, error) {
	var sum Summary
	var paths []string
	if files < 1 {
		files = 1
	}
	perFile := total / RecordSize / int64(files)
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
	rec := make([]byte, RecordSize)
	for f := 0; f < files; f++ {
		path := filepath.Join(dir, fmt.Sprintf("input-%03d.txt", f))
		out, err := os.Create(path)
		if err != nil {
			return sum, nil, fmt.Errorf("terasort: %w", err)
		}
		w := bufio.NewWriterSize(out, 1<<20)
		for i := int64(0); i < perFile; i++ {
			for j := 0; j < RecordSize-1; j++ {
				rec[j] = byte(33 + rng.IntN(94)) // '!'..'~': no space, tab or newline
			}
			rec[RecordSize-1] = '\n'
			sum.add(rec[:RecordSize-1])
			w.Write(rec)
		}
		if err := w.Flush(); err != nil {
			out.Close()
			return sum, nil, fmt.Errorf("terasort: %w", err)
		}
		if err := out.Close(); err != nil {
			return sum, nil, fmt.Errorf("terasort: %w", err)
		}
		paths = append(paths, path)
	}
	return sum, paths, nil
}

// Validate reads files in order as one sorted output and returns its
// summary; it fails at the first record whose key is below the previous
// one's, or that is not a record.
func Validate(files []string) (Summary, error) {
	var sum Summary
	var prev [KeySize]byte
	first := true
	for _, path := range files {
		f, err := os.Open(path)
		if err != nil {
			return sum, fmt.Errorf("terasort: %w", err)
		}
		r := bufio.NewReaderSize(f, 1<<20)
		for line := int64(1); ; line++ {
			rec, err := r.ReadSlice('\n')
			if err == io.EOF && len(rec) == 0 {
				break
			}
			if err == io.EOF {
				f.Close()
				return sum, fmt.Errorf("terasort: %s line %d: a record of %d bytes without its newline", path, line, len(rec))
			}
			if err != nil {
				f.Close()
				return sum, fmt.Errorf("terasort: %s line %d: %v", path, line, err)
			}
			rec = rec[:len(rec)-1]
			if len(rec) != RecordSize-1 {
				f.Close()
				return sum, fmt.Errorf("terasort: %s line %d: a record of %d bytes, want %d", path, line, len(rec), RecordSize-1)
			}
			if !first && bytes.Compare(rec[:KeySize], prev[:]) < 0 {
				f.Close()
				return sum, fmt.Errorf("terasort: %s line %d: key %q sorts before the previous key %q", path, line, rec[:KeySize], prev[:])
			}
			copy(prev[:], rec[:KeySize])
			first = false
			sum.add(rec)
		}
		f.Close()
	}
	return sum, nil
}

// SortLocal is the single-process baseline: it reads every record of the
// files into memory, sorts them by key and writes them to out.
func SortLocal(files []string, out string) (Summary, error) {
	var sum Summary
	var data []byte
	for _, path := range files {
		b, err := os.ReadFile(path)
		if err != nil {
			return sum, fmt.Errorf("terasort: %w", err)
		}
		data = append(data, b...)
	}
	if len(data)%RecordSize != 0 {
		return sum, errors.New("terasort: input is not whole records")
	}
	recs := make([][]byte, 0, len(data)/RecordSize)
	for i := 0; i < len(data); i += RecordSize {
		recs = append(recs, data[i:i+RecordSize])
	}
	slices.SortFunc(recs, func(a, b []byte) int { return bytes.Compare(a[:KeySize], b[:KeySize]) })
	f, err := os.Create(out)
	if err != nil {
		return sum, fmt.Errorf("terasort: %w", err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for _, r := range recs {
		w.Write(r)
		sum.add(r[:RecordSize-1])
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return sum, fmt.Errorf("terasort: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return sum, fmt.Errorf("terasort: %w", err)
	}
	return sum, f.Close()
}
