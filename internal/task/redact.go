package task

import "encoding/json"

// Redact returns a task payload without its secrets: the env of an exec
// (VMExecuteArgs), which may hold credentials. Read APIs show only the
// redacted payload, and a task that has finished keeps only it. A payload
// without secrets, or that is not a JSON object, is returned as is.
func Redact(payload json.RawMessage) json.RawMessage {
	var m map[string]json.RawMessage
	if json.Unmarshal(payload, &m) != nil {
		return payload
	}
	if _, ok := m["env"]; !ok {
		return payload
	}
	delete(m, "env")
	b, err := json.Marshal(m)
	if err != nil {
		return payload
	}
	return b
}
