package audit

import (
	"context"
	"errors"
	"fmt"
	"os"
)

// Prober is implemented by stores that can check, without writing an
// event, that they can take writes. A Queue probes a working store every
// QueueParams.ProbeInterval and a failing one before each retry; an error
// starts (or prolongs) an outage.
type Prober interface {
	Probe(ctx context.Context) error
}

// ErrStoreReplaced is wrapped by Probe's error when the store's file was
// deleted or replaced under the running gateway: the events written since
// the previous probe went to a file no path names any more. The store has
// then opened a new file at its path, so the next Probe may succeed.
var ErrStoreReplaced = errors.New("audit: store file deleted or replaced")

// stillAt reports whether path names the file opened as opened (device and
// inode, os.SameFile).
func stillAt(path string, opened os.FileInfo) (bool, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("audit: probe %s: %w", path, err)
	}
	return os.SameFile(fi, opened), nil
}
