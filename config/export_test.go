package config

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
)

// Data is every key's effective value in c as a ConfigMap's data would write it: Parse(c.Data())
// is c again (but for Uninstalling, which no key sets).
func (c Config) Data() map[string]string {
	data := make(map[string]string, len(keys))
	for i := range keys {
		data[keys[i].Name] = render(keys[i].value(&c))
	}
	return data
}

// render writes a key's value as the ConfigMap does.
func render(v slog.Value) string {
	switch v.Kind() {
	case slog.KindString:
		return v.String()
	case slog.KindInt64:
		return strconv.FormatInt(v.Int64(), 10)
	case slog.KindBool:
		return strconv.FormatBool(v.Bool())
	case slog.KindFloat64:
		return strconv.FormatFloat(v.Float64(), 'g', -1, 64)
	}
	b, err := json.Marshal(v.Any())
	if err != nil {
		return fmt.Sprint(v.Any())
	}
	return string(b)
}
