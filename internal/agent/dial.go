package agent

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/aetherium/aetherium/internal/agentproto"
	"github.com/aetherium/aetherium/internal/splice"
)

// dialTimeout bounds the connect to a guest port; loopback answers at once
// unless the listener's backlog is full.
const dialTimeout = 10 * time.Second

// dial connects to 127.0.0.1:req.Port and splices the connection with st
// until either side closes (see agentproto: dial).
func (s *Server) dial(st *stream, req *agentproto.DialRequest) {
	if req.Port < 1 || req.Port > 65535 {
		st.fail(agentproto.CodeInvalidArgument, fmt.Errorf("dial: port %d is not between 1 and 65535", req.Port))
		return
	}
	conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(req.Port)), dialTimeout)
	if err != nil {
		st.fail(agentproto.CodeUnavailable, fmt.Errorf("nothing accepts connections on port %d: %w", req.Port, errors.Unwrap(err)))
		return
	}
	defer conn.Close()
	if err := st.writeJSON(agentproto.TypeResponse, agentproto.Response{}); err != nil {
		return
	}
	splice.Conns(st.Conn, conn)
}
