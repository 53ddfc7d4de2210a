package agentproto

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		typ     FrameType
		payload []byte
	}{
		{"empty", TypeStdinClose, nil},
		{"bytes", TypeStdout, []byte("hello\x00world")},
		{"max", TypeData, bytes.Repeat([]byte{7}, MaxPayload)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var buf bytes.Buffer
			if err := WriteFrame(&buf, tt.typ, tt.payload); err != nil {
				t.Fatal(err)
			}
			f, err := ReadFrame(&buf, 0)
			if err != nil {
				t.Fatal(err)
			}
			if f.Type != tt.typ || !bytes.Equal(f.Payload, tt.payload) {
				t.Errorf("got %s/%d bytes, want %s/%d bytes", f.Type, len(f.Payload), tt.typ, len(tt.payload))
			}
			if _, err := ReadFrame(&buf, 0); err != io.EOF {
				t.Errorf("after last frame: got %v, want io.EOF", err)
			}
		})
	}
}

func TestReadFrameErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   []byte
		max  int
		want error
	}{
		{"short header", []byte{1, 0}, 0, io.ErrUnexpectedEOF},
		{"short payload", []byte{8, 0, 0, 0, 4, 'a'}, 0, io.ErrUnexpectedEOF},
		{"too large", []byte{8, 0xff, 0xff, 0xff, 0xff}, 0, ErrFrameTooLarge},
		{"above caller max", []byte{8, 0, 0, 0, 9}, 8, ErrFrameTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := ReadFrame(bytes.NewReader(tt.in), tt.max)
			if !errors.Is(err, tt.want) {
				t.Errorf("ReadFrame(%x) = %v, want %v", tt.in, err, tt.want)
			}
		})
	}
}

func TestDecodeErrorFrame(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	if err := WriteJSON(&buf, TypeError, RemoteError{Code: CodeNotFound, Message: "no such file"}); err != nil {
		t.Fatal(err)
	}
	f, err := ReadFrame(&buf, 0)
	if err != nil {
		t.Fatal(err)
	}
	var resp Response
	err = f.Decode(TypeResponse, &resp)
	var re *RemoteError
	if !errors.As(err, &re) || re.Code != CodeNotFound {
		t.Errorf("Decode = %v, want RemoteError not_found", err)
	}
}

func TestNegotiate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name             string
		peerMax, peerMin int
		want             int
		wantErr          bool
	}{
		{"same", Version, MinVersion, Version, false},
		{"newer peer", Version + 5, MinVersion, Version, false},
		{"peer needs newer", Version + 5, Version + 1, 0, true},
		{"peer too old", MinVersion - 1, 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Negotiate(tt.peerMax, tt.peerMin)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("Negotiate(%d, %d) = %d, %v; want %d, err=%v", tt.peerMax, tt.peerMin, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// FuzzReadFrame checks that any byte sequence decodes to frames or an error,
// never a panic or an allocation beyond the limit, and that decoded frames
// re-encode to the same bytes.
func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{8, 0, 0, 0, 2, 'h', 'i'})
	f.Add([]byte{2, 0, 0, 0, 2, '{', '}', 10, 0, 0, 0, 0})
	f.Add([]byte{4, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		var consumed int
		for {
			fr, err := ReadFrame(r, 4096)
			if err != nil {
				return
			}
			if len(fr.Payload) > 4096 {
				t.Fatalf("payload %d bytes above limit", len(fr.Payload))
			}
			var out bytes.Buffer
			if err := WriteFrame(&out, fr.Type, fr.Payload); err != nil {
				t.Fatal(err)
			}
			n := out.Len()
			if !bytes.Equal(out.Bytes(), in[consumed:consumed+n]) {
				t.Fatalf("re-encoded frame differs from input")
			}
			consumed += n
			var v map[string]any
			_ = fr.Decode(fr.Type, &v)
		}
	})
}
