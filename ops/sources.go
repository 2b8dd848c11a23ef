package ops

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	"github.com/baton-sched/baton/plan"
)

// FileResolver splits text files for textFile sources, as Hadoop's
// FileInputFormat does for Spark: goal size = total size / minPartitions,
// split size = min(goal, BlockSize), each file cut into pieces of that
// size (the last may be up to 10% larger). A line belongs to the split
// where it starts.
type FileResolver struct {
	// BlockSize caps a split's size. Default 32 MiB.
	BlockSize int64
	// Confine bounds the paths plans may read (nil: any).
	Confine *Confinement
}

// TextFileSplits implements plan.Resolver.
func (f FileResolver) TextFileSplits(glob string, minPartitions int) ([]plan.Split, error) {
	if IsS3(glob) {
		return f.s3Splits(glob, minPartitions)
	}
	if !filepath.IsAbs(glob) {
		return nil, fmt.Errorf("textFile path %q must be absolute (executors read it from their own file system) or s3://bucket/key", glob)
	}
	if err := f.Confine.CheckGlob(glob, nil); err != nil {
		return nil, err
	}
	matches, err := filepath.Glob(glob)
	if err != nil {
		return nil, fmt.Errorf("textFile path %q: %w", glob, err)
	}
	if err := f.Confine.CheckGlob(glob, matches); err != nil {
		return nil, err
	}
	sort.Strings(matches)
	var files []inputFile
	for _, m := range matches {
		st, err := os.Stat(m)
		if err != nil {
			return nil, err
		}
		if st.IsDir() {
			continue
		}
		files = append(files, inputFile{m, st.Size(), st.ModTime().UnixNano(), ""})
	}
	if len(files) == 0 {
		if len(matches) == 1 && matches[0] == filepath.Clean(glob) {
			// The path names a directory: a glob of its files was meant.
			return nil, fmt.Errorf("textFile path %q is a directory: give a glob of its files, such as %q", glob, filepath.Join(glob, "*"))
		}
		return nil, fmt.Errorf("no input files match %q", glob)
	}
	return splitFiles(files, f.BlockSize, minPartitions), nil
}

// inputFile is a file (or object) a textFile reads.
type inputFile struct {
	path  string
	size  int64
	mtime int64
	etag  string
}

// splitFiles cuts files into splits (see FileResolver).
func splitFiles(files []inputFile, block int64, minPartitions int) []plan.Split {
	var total int64
	for _, fl := range files {
		total += fl.size
	}
	if block <= 0 {
		block = 32 << 20
	}
	minPartitions = max(minPartitions, 1)
	goal := max(total/int64(minPartitions), 1)
	size := min(goal, block)
	var splits []plan.Split
	for _, fl := range files {
		if fl.size == 0 {
			continue
		}
		for off := int64(0); off < fl.size; {
			n := size
			if remaining := fl.size - off; float64(remaining) <= 1.1*float64(size) {
				n = remaining
			}
			splits = append(splits, plan.Split{Path: fl.path, Start: off, Length: n, Size: fl.size, ModTime: fl.mtime, ETag: fl.etag})
			off += n
		}
	}
	if len(splits) == 0 {
		// Only empty files: one empty split, so the job has a partition.
		fl := files[0]
		splits = append(splits, plan.Split{Path: fl.path, Size: fl.size, ModTime: fl.mtime, ETag: fl.etag})
	}
	return splits
}

type textParams struct {
	Splits []plan.Split `json:"splits"`
}

type rangeParams struct {
	N int64 `json:"n"`
}

type parallelizeParams struct {
	Records []plan.Record `json:"records"`
}

// openSplit opens a split's file at pos, refusing one that changed since
// the job was submitted.
func openSplit(ctx context.Context, cf *Confinement, s plan.Split, pos int64) (io.ReadCloser, error) {
	if IsS3(s.Path) {
		return openS3Split(ctx, cf, s, pos)
	}
	f, err := cf.OpenFile("textFile", s.Path)
	if err != nil {
		return nil, fmt.Errorf("ops: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("ops: textFile: %w", err)
	}
	if st.Size() != s.Size || st.ModTime().UnixNano() != s.ModTime {
		f.Close()
		return nil, fmt.Errorf("ops: textFile: %s changed since the job was submitted (size %d, was %d)", s.Path, st.Size(), s.Size)
	}
	if _, err := f.Seek(pos, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("ops: textFile: %w", err)
	}
	return f, nil
}

// readTextSplit emits the lines that start in a split, without their line
// ending, as value-only records.
func readTextSplit(ctx context.Context, cf *Confinement, ps *textParams, p int, emit Emit) error {
	if p >= len(ps.Splits) {
		return fmt.Errorf("ops: textFile has no split %d", p)
	}
	s := ps.Splits[p]
	// Start one byte early: if that byte ends a line, the split's first
	// line starts exactly at Start; otherwise skip the partial line, which
	// belongs to the previous split.
	pos := s.Start
	if pos > 0 {
		pos--
	}
	f, err := openSplit(ctx, cf, s, pos)
	if err != nil {
		return err
	}
	defer f.Close()
	if s.Length == 0 {
		return nil
	}
	r := bufio.NewReaderSize(f, 256<<10)
	if s.Start > 0 {
		skipped, err := r.ReadSlice('\n')
		for errors.Is(err, bufio.ErrBufferFull) {
			pos += int64(len(skipped))
			skipped, err = r.ReadSlice('\n')
		}
		pos += int64(len(skipped))
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("ops: textFile: %w", err)
		}
	}
	end := s.Start + s.Length
	var long []byte
	n := 0
	for pos < end {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A line longer than the buffer: assemble it.
			long = append(long[:0], line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = r.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		if len(line) == 0 && err == io.EOF {
			return nil
		}
		if err != nil && err != io.EOF {
			return fmt.Errorf("ops: textFile: %w", err)
		}
		pos += int64(len(line))
		line = bytes.TrimSuffix(line, []byte("\n"))
		line = bytes.TrimSuffix(line, []byte("\r"))
		if e := emit(Record{Value: line}); e != nil {
			return e
		}
		if err == io.EOF {
			return nil
		}
		if n++; n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
	}
	return nil
}

// rangeBounds returns the half-open range of values partition p of parts
// holds out of [0, n): the first n%parts partitions hold one more.
func rangeBounds(n int64, p, parts int) (int64, int64) {
	q, r := n/int64(parts), n%int64(parts)
	start := q*int64(p) + min(int64(p), r)
	size := q
	if int64(p) < r {
		size++
	}
	return start, start + size
}

// readRange emits partition p of a range, and stops when ctx ends (a
// range may be long enough that a killed task would otherwise run on).
func readRange(ctx context.Context, ps *rangeParams, p, parts int, emit Emit) error {
	start, end := rangeBounds(ps.N, p, parts)
	var buf []byte
	for v := start; v < end; v++ {
		if (v-start)%4096 == 4095 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		buf = strconv.AppendInt(buf[:0], v, 10)
		if err := emit(Record{Value: buf}); err != nil {
			return err
		}
	}
	return nil
}

func readParallelize(ps *parallelizeParams, p, parts int, emit Emit) error {
	start, end := rangeBounds(int64(len(ps.Records)), p, parts)
	for _, r := range ps.Records[start:end] {
		if err := emit(r); err != nil {
			return err
		}
	}
	return nil
}
