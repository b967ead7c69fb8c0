package telemetry

import (
	"strconv"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// maxCachedSets bounds each attrCache, should a label's values ever be more than the closed
// sets they come from (the event type is one of eventing.HandledTypes or TypeOther): past this
// many, a set is built for each measurement instead of kept.
const maxCachedSets = 1024

// attrCache keeps the attribute sets of a metric with two labels, by their values: every event
// records a few metrics, and building a set (copy, sort, dedupe) for each was a good part of
// recording them.
type attrCache struct {
	key1, key2 string
	sets       sync.Map // attrKey -> metric.MeasurementOption
	n          atomic.Int64
}

type attrKey struct{ v1, v2 string }

// option is the measurement option of the set {key1: v1, key2: v2}.
func (c *attrCache) option(v1, v2 string) metric.MeasurementOption {
	k := attrKey{v1, v2}
	if o, ok := c.sets.Load(k); ok {
		return o.(metric.MeasurementOption)
	}
	o := metric.WithAttributeSet(attribute.NewSet(attribute.String(c.key1, v1), attribute.String(c.key2, v2)))
	if c.n.Load() < maxCachedSets {
		if _, loaded := c.sets.LoadOrStore(k, o); !loaded {
			c.n.Add(1)
		}
	}
	return o
}

// statusCode is an HTTP status code as a label value, without allocating for the usual ones.
func statusCode(c int) string {
	switch c {
	case 200:
		return "200"
	case 202:
		return "202"
	}
	return strconv.Itoa(c)
}
