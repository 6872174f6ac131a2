package storage_test

import (
	"context"
	"testing"

	"github.com/mfagate/mfagate/storage"
	"github.com/mfagate/mfagate/storage/instrumented"
)

// feedStore is a store with a change feed, for FeedOf.
type feedStore struct {
	storage.Store
	storage.ChangeFeed
}

func (feedStore) Listen(context.Context, func(error)) <-chan struct{} { return nil }
func (feedStore) Audit() storage.AuditStore                           { return nil }

// plainStore is a store without one.
type plainStore struct{ storage.Store }

func (plainStore) Audit() storage.AuditStore { return nil }

// TestFeedOf: a store's feed is found through wrappers, and a store
// without one has none.
func TestFeedOf(t *testing.T) {
	inner := feedStore{}
	if storage.FeedOf(instrumented.Wrap(inner)) == nil {
		t.Fatal("the feed of a wrapped store was not found")
	}
	if storage.FeedOf(instrumented.Wrap(plainStore{})) != nil {
		t.Fatal("a store without a feed has one")
	}
	if storage.FeedOf(nil) != nil {
		t.Fatal("a nil store has a feed")
	}
}
