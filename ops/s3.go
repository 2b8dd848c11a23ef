package ops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/baton-sched/baton/plan"
)

// Object storage: s3:// paths in textFile and saveAsTextFile, through
// minio-go (a small, well-kept S3 client with ranged GETs, multipart
// uploads and server-side copy; the AWS SDK v2 would do as well at many
// times the dependencies). Any S3-compatible server works.
//
// Where and as whom comes from the machine, never from the plan: the
// endpoint from execd/schedd -s3-endpoint or AWS_ENDPOINT_URL (default AWS,
// https), the region from AWS_REGION (or AWS_DEFAULT_REGION), the
// credentials from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
// AWS_SESSION_TOKEN, else from the shared credentials file
// (~/.aws/credentials or AWS_SHARED_CREDENTIALS_FILE, profile AWS_PROFILE).

// S3Scheme prefixes object storage paths: s3://bucket/key.
const S3Scheme = "s3://"

// IsS3 reports whether p names object storage.
func IsS3(p string) bool { return strings.HasPrefix(p, S3Scheme) }

// maxS3Keys bounds the keys a textFile glob may list: a listing is held in
// memory at submission.
const maxS3Keys = 100_000

// s3PartSize is the part size of uploads of unknown length (a part is
// buffered in memory while it uploads).
const s3PartSize = 16 << 20

// parseS3 splits s3://bucket/key into its bucket and key ("" for the
// bucket's root).
func parseS3(what, p string) (bucket, key string, err error) {
	rest := strings.TrimPrefix(p, S3Scheme)
	bucket, key, _ = strings.Cut(rest, "/")
	if bucket == "" {
		return "", "", fmt.Errorf("%s %q names no bucket (want s3://bucket/prefix): %w", what, p, ErrOutputInvalid)
	}
	for _, part := range strings.Split(key, "/") {
		if part == "." || part == ".." {
			return "", "", fmt.Errorf("%s %q: a key may not hold . or .. components: %w", what, p, ErrOutputInvalid)
		}
	}
	return bucket, key, nil
}

// S3Endpoint returns the endpoint s3:// paths go to: the confinement's
// (the -s3-endpoint flag), else AWS_ENDPOINT_URL, else AWS.
func (c *Confinement) S3Endpoint() string {
	if c != nil && c.S3EndpointURL != "" {
		return c.S3EndpointURL
	}
	if e := os.Getenv("AWS_ENDPOINT_URL_S3"); e != "" {
		return e
	}
	if e := os.Getenv("AWS_ENDPOINT_URL"); e != "" {
		return e
	}
	return "https://s3.amazonaws.com"
}

var (
	s3mu      sync.Mutex
	s3clients = map[string]*minio.Client{}
	// s3transports share connections between clients.
	s3transports = map[bool]http.RoundTripper{}
)

// s3Client returns the client for the confinement's endpoint.
func (c *Confinement) s3Client() (*minio.Client, error) {
	endpoint := c.S3Endpoint()
	s3mu.Lock()
	defer s3mu.Unlock()
	if cl := s3clients[endpoint]; cl != nil {
		return cl, nil
	}
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || (u.Path != "" && u.Path != "/") {
		return nil, fmt.Errorf("ops: s3: endpoint %q is not an http(s)://host[:port] URL (-s3-endpoint or AWS_ENDPOINT_URL)", endpoint)
	}
	creds := credentials.NewChainCredentials([]credentials.Provider{&credentials.EnvAWS{}, &credentials.FileAWSCredentials{}})
	v, err := creds.GetWithContext(nil)
	if err != nil || v.AccessKeyID == "" || v.SecretAccessKey == "" {
		return nil, errors.New("ops: s3: no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary ones), or give a profile in ~/.aws/credentials")
	}
	secure := u.Scheme == "https"
	tr := s3transports[secure]
	if tr == nil {
		if tr, err = minio.DefaultTransport(secure); err != nil {
			return nil, fmt.Errorf("ops: s3: %w", err)
		}
		s3transports[secure] = tr
	}
	region := os.Getenv("AWS_REGION")
	if region == "" {
		region = os.Getenv("AWS_DEFAULT_REGION")
	}
	cl, err := minio.New(u.Host, &minio.Options{Creds: creds, Secure: secure, Region: region, Transport: tr})
	if err != nil {
		return nil, fmt.Errorf("ops: s3: endpoint %s: %w", endpoint, err)
	}
	s3clients[endpoint] = cl
	return cl, nil
}

// s3Error names what failed and why, in words where S3 has a code.
func s3Error(what, bucket, key string, err error) error {
	r := minio.ToErrorResponse(err)
	switch r.Code {
	case minio.NoSuchBucket:
		return fmt.Errorf("%s: bucket %q does not exist: %w", what, bucket, ErrOutputInvalid)
	case minio.NoSuchKey:
		return fmt.Errorf("%s: s3://%s/%s does not exist: %w", what, bucket, key, os.ErrNotExist)
	case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch":
		return fmt.Errorf("%s: s3://%s/%s: access denied (%s: check the credentials): %w", what, bucket, key, r.Code, err)
	}
	return fmt.Errorf("%s: s3://%s/%s: %w", what, bucket, key, err)
}

// s3Splits lists the objects a textFile s3:// glob matches (the glob
// applies to the key, '*' not crossing '/', as filepath.Match), sorted
// by key, with their sizes, times and ETags.
func (f FileResolver) s3Splits(glob string, minPartitions int) ([]plan.Split, error) {
	bucket, pattern, err := parseS3("textFile", glob)
	if err != nil {
		return nil, err
	}
	if _, err := path.Match(pattern, ""); err != nil {
		return nil, fmt.Errorf("textFile path %q: %w", glob, err)
	}
	cl, err := f.Confine.s3Client()
	if err != nil {
		return nil, err
	}
	prefix := pattern
	if i := strings.IndexAny(pattern, "*?[\\"); i >= 0 {
		prefix = pattern[:i]
	}
	ctx := context.Background()
	var files []inputFile
	n := 0
	for o := range cl.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			return nil, s3Error("textFile", bucket, prefix, o.Err)
		}
		if n++; n > maxS3Keys {
			return nil, fmt.Errorf("textFile path %q: more than %d keys under s3://%s/%s; narrow the prefix", glob, maxS3Keys, bucket, prefix)
		}
		if strings.HasSuffix(o.Key, "/") {
			continue
		}
		if ok, _ := path.Match(pattern, o.Key); ok {
			files = append(files, inputFile{S3Scheme + bucket + "/" + o.Key, o.Size, o.LastModified.UnixNano(), o.ETag})
		}
	}
	if len(files) == 0 {
		// Say whether the bucket is there at all.
		if ok, err := cl.BucketExists(ctx, bucket); err == nil && !ok {
			return nil, fmt.Errorf("textFile path %q: bucket %q does not exist", glob, bucket)
		}
		return nil, fmt.Errorf("no input objects match %q", glob)
	}
	return splitFiles(files, f.BlockSize, minPartitions), nil
}

// openS3Split opens a split's object from pos to its end (a ranged GET),
// refusing an object that changed since the job was submitted.
func openS3Split(ctx context.Context, cf *Confinement, s plan.Split, pos int64) (io.ReadCloser, error) {
	bucket, key, err := parseS3("textFile", s.Path)
	if err != nil {
		return nil, fmt.Errorf("ops: %w", err)
	}
	cl, err := cf.s3Client()
	if err != nil {
		return nil, err
	}
	st, err := cl.StatObject(ctx, bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("ops: %w", s3Error("textFile", bucket, key, err))
	}
	if st.Size != s.Size || (s.ETag != "" && st.ETag != s.ETag) {
		return nil, fmt.Errorf("ops: textFile: %s changed since the job was submitted (size %d, was %d; etag %s, was %s)", s.Path, st.Size, s.Size, st.ETag, s.ETag)
	}
	if s.Length == 0 {
		return io.NopCloser(strings.NewReader("")), nil
	}
	var opts minio.GetObjectOptions
	if s.ETag != "" {
		opts.SetMatchETag(s.ETag)
	}
	// From pos to the end: the split's last line may run past it.
	// (SetRange(0, 0) would ask for one byte.)
	if pos > 0 {
		if err := opts.SetRange(pos, 0); err != nil {
			return nil, fmt.Errorf("ops: textFile: %w", err)
		}
	}
	obj, err := cl.GetObject(ctx, bucket, key, opts)
	if err != nil {
		return nil, fmt.Errorf("ops: %w", s3Error("textFile", bucket, key, err))
	}
	if _, err := obj.Stat(); err != nil {
		obj.Close()
		if minio.ToErrorResponse(err).Code == "PreconditionFailed" {
			return nil, fmt.Errorf("ops: textFile: %s changed since the job was submitted (its etag is no longer %s)", s.Path, s.ETag)
		}
		return nil, fmt.Errorf("ops: %w", s3Error("textFile", bucket, key, err))
	}
	return obj, nil
}

// s3Output is a saveAsTextFile output under s3://bucket/prefix: part
// objects prefix/part-NNNNN, temporary ones under prefix/_temporary/.
type s3Output struct {
	cl     *minio.Client
	bucket string
	prefix string // "" or ending in "/"
	where  string
}

func (c *Confinement) openS3Output(_ context.Context, where string) (Output, error) {
	bucket, key, err := parseS3("saveAsTextFile", where)
	if err != nil {
		return nil, err
	}
	cl, err := c.s3Client()
	if err != nil {
		return nil, err
	}
	key = strings.Trim(key, "/")
	if key != "" {
		key += "/"
	}
	return &s3Output{cl: cl, bucket: bucket, prefix: key, where: where}, nil
}

func (o *s3Output) key(name string) string { return o.prefix + name }

func (o *s3Output) Check(ctx context.Context) error {
	ok, err := o.cl.BucketExists(ctx, o.bucket)
	if err != nil {
		return s3Error("saveAsTextFile", o.bucket, o.prefix, err)
	}
	if !ok {
		return fmt.Errorf("saveAsTextFile: output %s: bucket %q does not exist: %w", o.where, o.bucket, ErrOutputInvalid)
	}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for obj := range o.cl.ListObjects(lctx, o.bucket, minio.ListObjectsOptions{Prefix: o.prefix, Recursive: true, MaxKeys: 1}) {
		if obj.Err != nil {
			return s3Error("saveAsTextFile", o.bucket, o.prefix, obj.Err)
		}
		return fmt.Errorf("saveAsTextFile: output %s %w (it holds %s)", o.where, ErrOutputExists, obj.Key)
	}
	return nil
}

func (o *s3Output) Create(ctx context.Context, job, task uint64, part int) (Attempt, error) {
	pr, pw := io.Pipe()
	a := &s3Attempt{o: o, ctx: ctx, tmp: o.key(attemptName(job, task, part)), part: part, pw: pw, done: make(chan error, 1)}
	go func() {
		_, err := o.cl.PutObject(ctx, o.bucket, a.tmp, pr, -1, minio.PutObjectOptions{PartSize: s3PartSize, ContentType: "text/plain"})
		pr.CloseWithError(err)
		a.done <- err
	}()
	return a, nil
}

// removePrefix deletes every object under prefix.
func (o *s3Output) removePrefix(ctx context.Context, prefix string) error {
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	objs := make(chan minio.ObjectInfo)
	var listErr error
	go func() {
		defer close(objs)
		for obj := range o.cl.ListObjects(lctx, o.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
			if obj.Err != nil {
				listErr = obj.Err
				return
			}
			select {
			case objs <- obj:
			case <-lctx.Done():
				return
			}
		}
	}()
	var first error
	for e := range o.cl.RemoveObjects(ctx, o.bucket, objs, minio.RemoveObjectsOptions{}) {
		if first == nil && minio.ToErrorResponse(e.Err).Code != minio.NoSuchKey {
			first = e.Err
		}
	}
	if first == nil {
		first = listErr
	}
	if first != nil {
		return s3Error("saveAsTextFile: removing temporary objects", o.bucket, prefix, first)
	}
	return nil
}

func (o *s3Output) CommitJob(ctx context.Context, job uint64) error {
	if err := o.AbortJob(ctx, job); err != nil {
		return err
	}
	if _, err := o.cl.PutObject(ctx, o.bucket, o.key("_SUCCESS"), strings.NewReader(""), 0, minio.PutObjectOptions{}); err != nil {
		return s3Error("saveAsTextFile: writing _SUCCESS", o.bucket, o.key("_SUCCESS"), err)
	}
	return nil
}

func (o *s3Output) AbortJob(ctx context.Context, job uint64) error {
	return o.removePrefix(ctx, o.key(tempDir(job))+"/")
}

func (o *s3Output) Close() error { return nil }

// s3Attempt streams an attempt's partition to its temporary object (a
// multipart upload of s3PartSize parts as it is written).
type s3Attempt struct {
	o    *s3Output
	ctx  context.Context
	tmp  string
	part int
	pw   *io.PipeWriter
	done chan error
	err  error
	fin  bool
}

func (a *s3Attempt) Write(b []byte) (int, error) { return a.pw.Write(b) }

func (a *s3Attempt) Finish() error {
	a.pw.Close()
	a.err = <-a.done
	a.fin = true
	if a.err != nil {
		return s3Error("saveAsTextFile: uploading", a.o.bucket, a.tmp, a.err)
	}
	return nil
}

// Commit copies the temporary object to the part's name on the server
// (ComposeObject: one copy up to 5 GiB, a multipart copy beyond).
func (a *s3Attempt) Commit() error {
	dst := minio.CopyDestOptions{Bucket: a.o.bucket, Object: a.o.key(PartName(a.part))}
	src := minio.CopySrcOptions{Bucket: a.o.bucket, Object: a.tmp}
	if _, err := a.o.cl.ComposeObject(a.ctx, dst, src); err != nil {
		return s3Error("saveAsTextFile: commit", a.o.bucket, dst.Object, err)
	}
	return nil
}

func (a *s3Attempt) Discard() {
	if !a.fin {
		a.pw.CloseWithError(errors.New("ops: saveAsTextFile: attempt discarded"))
		<-a.done
		a.fin = true
	}
	// Removing needs a context that outlives a cancelled task.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(a.ctx), time.Minute)
	defer cancel()
	a.o.cl.RemoveObject(ctx, a.o.bucket, a.tmp, minio.RemoveObjectOptions{})
}
